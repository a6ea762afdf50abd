-- The upload sink's staging state (e.g. an object store's multipart upload id and part
-- ETags), written in the same statement as the offset it describes, so the two agree.
ALTER TABLE uploads ADD COLUMN staging text NOT NULL DEFAULT '';
-- What to abort when a deleted upload's bytes are purged.
ALTER TABLE purge_outbox ADD COLUMN staging text NOT NULL DEFAULT '';
