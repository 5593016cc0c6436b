-- Core schema: DICOM hierarchy, series labels, users, sessions, log, export sets,
-- and the sources/destinations other areas fill in.  {ID} is rendered per dialect.

CREATE TABLE patients (
    id {ID},
    patient_name TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    patient_birth_date TEXT NOT NULL DEFAULT '',
    patient_sex TEXT NOT NULL DEFAULT '',
    CONSTRAINT uq_patients_identity UNIQUE (patient_name, patient_id)
);

CREATE TABLE studies (
    id {ID},
    patient_id BIGINT NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    study_instance_uid TEXT NOT NULL,
    study_description TEXT NOT NULL DEFAULT '',
    study_date TEXT NOT NULL DEFAULT '',
    study_id TEXT NOT NULL DEFAULT '',
    accession_number TEXT NOT NULL DEFAULT '',
    patient_age TEXT NOT NULL DEFAULT '',
    CONSTRAINT uq_studies_identity UNIQUE (patient_id, study_instance_uid)
);

CREATE TABLE series (
    id {ID},
    study_id BIGINT NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    series_instance_uid TEXT NOT NULL,
    series_description TEXT NOT NULL DEFAULT '',
    series_date TEXT NOT NULL DEFAULT '',
    modality TEXT NOT NULL DEFAULT '',
    protocol_name TEXT NOT NULL DEFAULT '',
    body_part_examined TEXT NOT NULL DEFAULT '',
    manufacturer TEXT NOT NULL DEFAULT '',
    station_name TEXT NOT NULL DEFAULT '',
    frame_of_reference_uid TEXT NOT NULL DEFAULT '',
    CONSTRAINT uq_series_identity UNIQUE (study_id, series_instance_uid)
);

CREATE TABLE images (
    id {ID},
    series_id BIGINT NOT NULL REFERENCES series (id) ON DELETE CASCADE,
    sop_instance_uid TEXT NOT NULL,
    image_type TEXT NOT NULL DEFAULT '',
    instance_number TEXT NOT NULL DEFAULT '',
    CONSTRAINT uq_images_identity UNIQUE (series_id, sop_instance_uid)
);
CREATE INDEX ix_images_sop_instance_uid ON images (sop_instance_uid);

CREATE TABLE series_sources (
    series_id BIGINT PRIMARY KEY REFERENCES series (id) ON DELETE CASCADE,
    source_type TEXT NOT NULL,
    source_name TEXT NOT NULL,
    source_id BIGINT NOT NULL
);
CREATE INDEX ix_series_sources_ref ON series_sources (source_type, source_id);

CREATE TABLE series_tags (
    id {ID},
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE series_series_tags (
    series_id BIGINT NOT NULL REFERENCES series (id) ON DELETE CASCADE,
    series_tag_id BIGINT NOT NULL REFERENCES series_tags (id) ON DELETE CASCADE,
    PRIMARY KEY (series_id, series_tag_id)
);

CREATE TABLE series_types (
    id {ID},
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE series_series_types (
    series_id BIGINT NOT NULL REFERENCES series (id) ON DELETE CASCADE,
    series_type_id BIGINT NOT NULL REFERENCES series_types (id) ON DELETE CASCADE,
    PRIMARY KEY (series_id, series_type_id)
);

CREATE TABLE users (
    id {ID},
    username TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL
);

CREATE TABLE sessions (
    id {ID},
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token TEXT NOT NULL UNIQUE,
    ip TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    updated BIGINT NOT NULL
);
CREATE INDEX ix_sessions_owner ON sessions (user_id, ip, user_agent);

CREATE TABLE log (
    id {ID},
    created BIGINT NOT NULL,
    entry_type TEXT NOT NULL,
    subject TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX ix_log_created ON log (created);

CREATE TABLE export_sets (
    id {ID},
    created BIGINT NOT NULL,
    expires BIGINT NOT NULL,
    image_ids TEXT NOT NULL
);

CREATE TABLE boxes (
    id {ID},
    name TEXT NOT NULL UNIQUE,
    token TEXT NOT NULL UNIQUE,
    base_url TEXT NOT NULL,
    send_method TEXT NOT NULL,
    profile TEXT NOT NULL DEFAULT '',
    last_seen BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE scps (
    id {ID},
    name TEXT NOT NULL UNIQUE,
    ae_title TEXT NOT NULL,
    port INTEGER NOT NULL UNIQUE
);

CREATE TABLE scus (
    id {ID},
    name TEXT NOT NULL UNIQUE,
    ae_title TEXT NOT NULL,
    host TEXT NOT NULL,
    port INTEGER NOT NULL
);

CREATE TABLE directory_watches (
    id {ID},
    name TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL UNIQUE
);

CREATE TABLE import_sessions (
    id {ID},
    name TEXT NOT NULL UNIQUE,
    user_id BIGINT NOT NULL,
    username TEXT NOT NULL,
    files_imported INTEGER NOT NULL DEFAULT 0,
    files_added INTEGER NOT NULL DEFAULT 0,
    files_rejected INTEGER NOT NULL DEFAULT 0,
    created BIGINT NOT NULL,
    last_updated BIGINT NOT NULL
);
