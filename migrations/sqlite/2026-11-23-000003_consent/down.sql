DROP TABLE idempotency_keys;
DROP TABLE consent_records;
DROP TABLE notices;
DROP TABLE purposes;
