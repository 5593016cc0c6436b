-- Box-to-box transfers: outgoing and incoming transactions with per-image state.
-- Everything a restart needs to resume lives here, never in memory.

CREATE TABLE outgoing_transactions (
    id {ID},
    box_id BIGINT NOT NULL,
    box_name TEXT NOT NULL,
    profile TEXT NOT NULL,
    sent_image_count BIGINT NOT NULL DEFAULT 0,
    total_image_count BIGINT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX ix_outgoing_transactions_box ON outgoing_transactions (box_id, status);

CREATE TABLE outgoing_images (
    id {ID},
    outgoing_transaction_id BIGINT NOT NULL REFERENCES outgoing_transactions (id) ON DELETE CASCADE,
    image_id BIGINT NOT NULL,
    sequence_number BIGINT NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0,
    CONSTRAINT uq_outgoing_images_seq UNIQUE (outgoing_transaction_id, sequence_number)
);
CREATE INDEX ix_outgoing_images_pending ON outgoing_images (outgoing_transaction_id, sent);

CREATE TABLE outgoing_tag_values (
    id {ID},
    outgoing_image_id BIGINT NOT NULL REFERENCES outgoing_images (id) ON DELETE CASCADE,
    tag_path TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX ix_outgoing_tag_values_image ON outgoing_tag_values (outgoing_image_id);

CREATE TABLE incoming_transactions (
    id {ID},
    box_id BIGINT NOT NULL,
    box_name TEXT NOT NULL,
    outgoing_transaction_id BIGINT NOT NULL,
    received_image_count BIGINT NOT NULL DEFAULT 0,
    added_image_count BIGINT NOT NULL DEFAULT 0,
    total_image_count BIGINT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    status TEXT NOT NULL,
    CONSTRAINT uq_incoming_transactions_remote UNIQUE (box_id, outgoing_transaction_id)
);

CREATE TABLE incoming_images (
    id {ID},
    incoming_transaction_id BIGINT NOT NULL REFERENCES incoming_transactions (id) ON DELETE CASCADE,
    image_id BIGINT,
    sequence_number BIGINT NOT NULL,
    overwrite INTEGER NOT NULL DEFAULT 0,
    CONSTRAINT uq_incoming_images_seq UNIQUE (incoming_transaction_id, sequence_number)
);
