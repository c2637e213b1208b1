-- Consent: purposes and privacy notices (each version kept), consent records (one row per
-- consent.recorded entry, deleted only by an erasure), and the answers to idempotent requests.
-- All of them are projections of ledger entries written in the same transaction.

CREATE TABLE purposes (
    key TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    legal_basis TEXT NOT NULL CHECK (legal_basis IN ('consent', 'contract', 'legal_obligation',
        'vital_interests', 'public_task', 'legitimate_interests')),
    consent_required BOOLEAN NOT NULL CHECK (consent_required IN (0, 1)),
    lifetime_days INTEGER CHECK (lifetime_days IS NULL OR lifetime_days > 0),
    gpc_applies BOOLEAN NOT NULL CHECK (gpc_applies IN (0, 1)),
    dpv_iri TEXT,
    status TEXT NOT NULL CHECK (status IN ('active', 'retired')),
    at BIGINT NOT NULL,
    seq BIGINT NOT NULL UNIQUE,
    PRIMARY KEY (key, version)
);

CREATE TABLE notices (
    key TEXT NOT NULL,
    version TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    url TEXT NOT NULL,
    effective_at BIGINT NOT NULL,
    at BIGINT NOT NULL,
    seq BIGINT NOT NULL UNIQUE,
    PRIMARY KEY (key, version)
);

CREATE TABLE consent_records (
    seq BIGINT PRIMARY KEY NOT NULL,
    subject TEXT NOT NULL,
    purpose TEXT NOT NULL,
    channel TEXT NOT NULL CHECK (channel IN ('email', 'sms', 'phone', 'post', 'push', 'web', 'ads', 'any')),
    decision TEXT NOT NULL CHECK (decision IN ('granted', 'withdrawn', 'denied')),
    legal_basis TEXT NOT NULL CHECK (legal_basis IN ('consent', 'contract', 'legal_obligation',
        'vital_interests', 'public_task', 'legitimate_interests')),
    method TEXT NOT NULL,
    notice_key TEXT,
    notice_version TEXT,
    collected_at BIGINT NOT NULL,
    expires_at BIGINT,
    jurisdiction TEXT,
    source TEXT,
    gpc BOOLEAN NOT NULL CHECK (gpc IN (0, 1)),
    evidence TEXT,
    fingerprint TEXT NOT NULL UNIQUE,
    CHECK (expires_at IS NULL OR expires_at > collected_at)
);
CREATE INDEX consent_records_subject ON consent_records (subject, purpose, channel);

CREATE TABLE idempotency_keys (
    caller TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    response TEXT NOT NULL,
    subject_ref TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (caller, key)
);
CREATE INDEX idempotency_keys_subject_ref ON idempotency_keys (subject_ref) WHERE subject_ref IS NOT NULL;
