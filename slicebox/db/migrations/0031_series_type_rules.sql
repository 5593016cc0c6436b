-- Series type rules and their attributes; which series types a rule gave
-- (as opposed to a user's manual label); the background re-evaluation state.

CREATE TABLE series_type_rules (
    id {ID},
    series_type_id BIGINT NOT NULL REFERENCES series_types (id) ON DELETE CASCADE
);
CREATE INDEX ix_series_type_rules_type ON series_type_rules (series_type_id);

CREATE TABLE series_type_rule_attributes (
    id {ID},
    series_type_rule_id BIGINT NOT NULL REFERENCES series_type_rules (id) ON DELETE CASCADE,
    tag_group INTEGER NOT NULL,
    tag_element INTEGER NOT NULL,
    path TEXT NOT NULL DEFAULT '',
    value TEXT NOT NULL
);
CREATE INDEX ix_series_type_rule_attributes_rule ON series_type_rule_attributes (series_type_rule_id);

-- 1: assigned by the rules (replaced on every evaluation); 0: assigned by a user (kept).
ALTER TABLE series_series_types ADD COLUMN by_rule INTEGER NOT NULL DEFAULT 0;

-- One row: every change to types/rules/attributes bumps ``requested``; the
-- background pass sets ``done`` to the generation it evaluated from scratch.
CREATE TABLE series_type_update (
    id INTEGER PRIMARY KEY,
    requested BIGINT NOT NULL,
    done BIGINT NOT NULL
);
INSERT INTO series_type_update (id, requested, done) VALUES (1, 0, 0);
