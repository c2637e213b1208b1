DROP INDEX api_tokens_minted_by;
ALTER TABLE api_tokens RENAME COLUMN minted_by TO issued_by;
