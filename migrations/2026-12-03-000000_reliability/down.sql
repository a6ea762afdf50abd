DROP INDEX assets_failed_bytes;
ALTER TABLE assets DROP COLUMN bytes_purged_at;
ALTER TABLE assets DROP COLUMN failed_at;
