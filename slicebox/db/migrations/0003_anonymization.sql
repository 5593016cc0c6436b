-- Anonymization: keys (real <-> anonymous identities per anonymized image), their
-- key values, and the pseudonym table that makes identities consistent.
-- image_id has no foreign key on purpose: a key must outlive its source image
-- (in-place anonymization deletes the original), or the anonymous copy could
-- never be mapped back.

CREATE TABLE anonymization_keys (
    id {ID},
    created BIGINT NOT NULL,
    image_id BIGINT NOT NULL,
    patient_name TEXT NOT NULL DEFAULT '',
    anon_patient_name TEXT NOT NULL DEFAULT '',
    patient_id TEXT NOT NULL DEFAULT '',
    anon_patient_id TEXT NOT NULL DEFAULT '',
    study_instance_uid TEXT NOT NULL DEFAULT '',
    anon_study_instance_uid TEXT NOT NULL DEFAULT '',
    series_instance_uid TEXT NOT NULL DEFAULT '',
    anon_series_instance_uid TEXT NOT NULL DEFAULT '',
    sop_instance_uid TEXT NOT NULL DEFAULT '',
    anon_sop_instance_uid TEXT NOT NULL DEFAULT ''
);
CREATE INDEX ix_anonymization_keys_image ON anonymization_keys (image_id);
CREATE INDEX ix_anonymization_keys_patient ON anonymization_keys (patient_name, patient_id);
CREATE INDEX ix_anonymization_keys_anon_patient ON anonymization_keys (anon_patient_name, anon_patient_id);
CREATE INDEX ix_anonymization_keys_study ON anonymization_keys (study_instance_uid);
CREATE INDEX ix_anonymization_keys_anon_study ON anonymization_keys (anon_study_instance_uid);
CREATE INDEX ix_anonymization_keys_series ON anonymization_keys (series_instance_uid);
CREATE INDEX ix_anonymization_keys_anon_series ON anonymization_keys (anon_series_instance_uid);
CREATE INDEX ix_anonymization_keys_sop ON anonymization_keys (sop_instance_uid);
CREATE INDEX ix_anonymization_keys_anon_sop ON anonymization_keys (anon_sop_instance_uid);

CREATE TABLE anonymization_key_values (
    id {ID},
    anonymization_key_id BIGINT NOT NULL REFERENCES anonymization_keys (id) ON DELETE CASCADE,
    tag_path TEXT NOT NULL,
    value TEXT NOT NULL DEFAULT '',
    anonymized_value TEXT NOT NULL DEFAULT ''
);
CREATE INDEX ix_anonymization_key_values_key ON anonymization_key_values (anonymization_key_id);

-- One row per real identity and kind ('patient': real (name, ID) -> anonymous
-- (name, ID) plus the patient's date shift in days; 'uid': real UID -> 2.25.*).
-- Both UNIQUE constraints decide races: concurrent workers insert with
-- ON CONFLICT DO NOTHING and then read the single winner; no anonymous value
-- can ever stand for two real ones.
CREATE TABLE anonymization_identities (
    id {ID},
    kind TEXT NOT NULL,
    scope TEXT NOT NULL DEFAULT '',
    real_value TEXT NOT NULL,
    anon_value TEXT NOT NULL,
    date_shift INTEGER NOT NULL DEFAULT 0,
    created BIGINT NOT NULL,
    CONSTRAINT uq_anonymization_identities_real UNIQUE (kind, scope, real_value),
    CONSTRAINT uq_anonymization_identities_anon UNIQUE (kind, anon_value)
);
