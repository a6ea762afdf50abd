-- When an asset failed (its stored bytes are kept for ROUGHY_FAILED_RETENTION_SECS after), and
-- when those bytes were handed to the purge outbox. The asset row and its error stay.
ALTER TABLE assets ADD COLUMN failed_at timestamptz;
ALTER TABLE assets ADD COLUMN bytes_purged_at timestamptz;
UPDATE assets SET failed_at = created_at WHERE state = 'failed';
CREATE INDEX assets_failed_bytes ON assets (failed_at) WHERE state = 'failed' AND bytes_purged_at IS NULL;
