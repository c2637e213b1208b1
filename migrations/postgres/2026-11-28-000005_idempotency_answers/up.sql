-- Answers kept for Idempotency-Key retries are now ledger entries (`idempotency.answered`), with
-- keys and request hashes kept as keyed references. Answers stored before have no entry (so a
-- replay could not rebuild them) and are in the old form: they are dropped. A request retried
-- across the upgrade runs again.
DELETE FROM idempotency_keys;
