-- Directory watches: the ledger of files already imported (or refused), by real path, size and
-- modification time.  Not tied to a watch row: deleting a watch and creating it again must not
-- import its files a second time.
CREATE TABLE directory_watch_files (
    path TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    mtime_ns BIGINT NOT NULL,
    status TEXT NOT NULL,
    image_id BIGINT,
    imports INTEGER NOT NULL DEFAULT 0,
    updated BIGINT NOT NULL
);

-- Import sessions: the images each session brought in (gone with the image or the session).
CREATE TABLE import_session_images (
    import_session_id BIGINT NOT NULL REFERENCES import_sessions (id) ON DELETE CASCADE,
    image_id BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    PRIMARY KEY (import_session_id, image_id)
);
CREATE INDEX ix_import_session_images_image ON import_session_images (image_id);
