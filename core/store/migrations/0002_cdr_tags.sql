-- The tags the dialplan set for a call (a JSON object, keys sorted).
ALTER TABLE cdr ADD COLUMN tags TEXT NOT NULL DEFAULT '{}';
