-- A transaction to a PUSH box ends with telling the peer FINISHED (PUT status), also when its
-- last images were skipped; the peer may be away at that moment, so whether it has been told
-- is kept here and retried until it answers.  0 = still to tell.  Transactions finished before
-- this migration count as told.
ALTER TABLE outgoing_transactions ADD COLUMN finish_reported INTEGER NOT NULL DEFAULT 0;
UPDATE outgoing_transactions SET finish_reported = 1 WHERE status = 'FINISHED';
