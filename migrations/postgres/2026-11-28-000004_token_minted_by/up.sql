-- A token records who minted it, so that disabling that person (or revoking the token that
-- minted it) revokes what they minted; the index serves that lookup.
ALTER TABLE api_tokens RENAME COLUMN issued_by TO minted_by;
CREATE INDEX api_tokens_minted_by ON api_tokens (minted_by);
