-- Tag filters (WHITELIST / BLACKLIST), their tag paths, and one filter per source.

CREATE TABLE tag_filters (
    id {ID},
    name TEXT NOT NULL UNIQUE,
    filter_type TEXT NOT NULL
);

CREATE TABLE tag_filter_paths (
    id {ID},
    tag_filter_id BIGINT NOT NULL REFERENCES tag_filters (id) ON DELETE CASCADE,
    tag_path TEXT NOT NULL,
    CONSTRAINT uq_tag_filter_paths UNIQUE (tag_filter_id, tag_path)
);

CREATE TABLE source_tag_filters (
    id {ID},
    source_type TEXT NOT NULL,
    source_name TEXT NOT NULL,
    source_id BIGINT NOT NULL,
    tag_filter_id BIGINT NOT NULL REFERENCES tag_filters (id) ON DELETE CASCADE,
    CONSTRAINT uq_source_tag_filters_source UNIQUE (source_type, source_id)
);
