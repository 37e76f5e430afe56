-- An agent call's conversation: a JSON array of its turns in order, each
-- {"caller": words, "agent": answer, "interrupted": bool} ('[]' without).
ALTER TABLE cdr ADD COLUMN transcript TEXT NOT NULL DEFAULT '[]';
