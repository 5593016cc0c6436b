-- Recording a key (one per anonymized image) paid for nine secondary indexes.
-- Only the anonymous identities are ever looked up (reverse anonymization:
-- ix_anonymization_keys_anon_*); the list and query routes filter with
-- LOWER(..) LIKE and CAST(..) = ?, which no plain index serves, and nothing
-- selects keys by image id or by real identity.  Drop those five.
DROP INDEX IF EXISTS ix_anonymization_keys_image;
DROP INDEX IF EXISTS ix_anonymization_keys_patient;
DROP INDEX IF EXISTS ix_anonymization_keys_study;
DROP INDEX IF EXISTS ix_anonymization_keys_series;
DROP INDEX IF EXISTS ix_anonymization_keys_sop;
