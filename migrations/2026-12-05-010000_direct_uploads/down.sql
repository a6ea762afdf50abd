ALTER TABLE assets DROP COLUMN direct_upload;
