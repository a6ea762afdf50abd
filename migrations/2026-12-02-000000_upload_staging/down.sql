ALTER TABLE purge_outbox DROP COLUMN staging;
ALTER TABLE uploads DROP COLUMN staging;
