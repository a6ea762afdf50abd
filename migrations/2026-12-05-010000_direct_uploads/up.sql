-- Direct uploads: the asset's upload URL carries a signed token instead of needing the API key.
-- NULL: not direct; '': direct, the service's CORS settings apply; an origin
-- ('https://app.example.com'): direct, and the only web origin that gets CORS answers for it.
ALTER TABLE assets ADD COLUMN direct_upload text;
