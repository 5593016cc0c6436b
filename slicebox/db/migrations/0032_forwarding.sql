-- Forwarding rules and their queue.  Everything lives here so that a restart,
-- a crash or an unreachable destination delays forwarding but never loses or
-- duplicates it.

CREATE TABLE forwarding_rules (
    id {ID},
    source_type TEXT NOT NULL,
    source_name TEXT NOT NULL,
    source_id BIGINT NOT NULL,
    destination_type TEXT NOT NULL,
    destination_name TEXT NOT NULL,
    destination_id BIGINT NOT NULL,
    keep_images INTEGER NOT NULL,
    CONSTRAINT uq_forwarding_rules UNIQUE (source_type, source_id, destination_type, destination_id)
);
CREATE INDEX ix_forwarding_rules_source ON forwarding_rules (source_type, source_id);

-- A batch of images of one series for one rule.  status: PENDING (waiting to be
-- handed to the destination), ENROUTE (handed over; for a box: outgoing_id is
-- the box's outgoing transaction), DELIVERED (the destination has them).
CREATE TABLE forwarding_transactions (
    id {ID},
    rule_id BIGINT NOT NULL REFERENCES forwarding_rules (id) ON DELETE CASCADE,
    series_id BIGINT NOT NULL,
    status TEXT NOT NULL,
    outgoing_id BIGINT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt BIGINT NOT NULL DEFAULT 0,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL
);
CREATE INDEX ix_forwarding_transactions_status ON forwarding_transactions (status, next_attempt);

-- One row per (rule, image); written in the transaction that stores the image.
CREATE TABLE forwarding_images (
    id {ID},
    rule_id BIGINT NOT NULL REFERENCES forwarding_rules (id) ON DELETE CASCADE,
    image_id BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    series_id BIGINT NOT NULL,
    queued BIGINT NOT NULL,
    transaction_id BIGINT REFERENCES forwarding_transactions (id) ON DELETE CASCADE,
    delivered INTEGER NOT NULL DEFAULT 0,
    CONSTRAINT uq_forwarding_images UNIQUE (rule_id, image_id)
);
CREATE INDEX ix_forwarding_images_open ON forwarding_images (transaction_id, rule_id, series_id);
CREATE INDEX ix_forwarding_images_image ON forwarding_images (image_id);
CREATE INDEX ix_forwarding_images_delivered ON forwarding_images (delivered);
