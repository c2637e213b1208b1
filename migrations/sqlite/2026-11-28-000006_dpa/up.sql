-- Vendors and their data processing agreements (GDPR Art. 28). Every version of a vendor's record
-- and of each DPA is kept; sub-processor authorisations are dated decisions. All of these are
-- projections of ledger entries written in the same transaction. Signed documents are kept by their
-- SHA-256 in dpa_document_bytes: the ledger holds each one's hash, never its bytes.

CREATE TABLE vendors (
    id TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    name TEXT NOT NULL,
    legal_name TEXT,
    country TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('processor', 'sub_processor', 'joint_controller', 'controller')),
    contact TEXT,
    status TEXT NOT NULL CHECK (status IN ('active', 'offboarded')),
    parent TEXT,
    data_categories TEXT NOT NULL,
    at BIGINT NOT NULL,
    seq BIGINT NOT NULL UNIQUE,
    PRIMARY KEY (id, version)
);

CREATE TABLE dpas (
    id TEXT PRIMARY KEY NOT NULL,
    vendor TEXT NOT NULL,
    at BIGINT NOT NULL,
    seq BIGINT NOT NULL UNIQUE,
    terminated_at BIGINT,
    termination_reason TEXT,
    terminated_seq BIGINT UNIQUE
);
CREATE INDEX dpas_vendor ON dpas (vendor);

CREATE TABLE dpa_versions (
    dpa TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    reference TEXT NOT NULL,
    signed_on TEXT NOT NULL,
    effective_from BIGINT NOT NULL,
    expires_at BIGINT,
    purposes TEXT NOT NULL,
    data_categories TEXT NOT NULL,
    clauses TEXT NOT NULL,
    transfers TEXT NOT NULL,
    document_sha256 TEXT,
    status TEXT NOT NULL CHECK (status IN ('draft', 'active')),
    reminder_days TEXT NOT NULL,
    at BIGINT NOT NULL,
    seq BIGINT NOT NULL UNIQUE,
    PRIMARY KEY (dpa, version),
    CHECK (expires_at IS NULL OR expires_at > effective_from)
);

CREATE TABLE dpa_documents (
    dpa TEXT NOT NULL,
    version INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    at BIGINT NOT NULL,
    seq BIGINT NOT NULL UNIQUE,
    PRIMARY KEY (dpa, version)
);

CREATE TABLE dpa_document_bytes (
    sha256 TEXT PRIMARY KEY NOT NULL,
    bytes BLOB NOT NULL
);

CREATE TABLE subprocessor_decisions (
    seq BIGINT PRIMARY KEY NOT NULL,
    vendor TEXT NOT NULL,
    parent TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('authorised', 'objected')),
    decided_on TEXT NOT NULL,
    note TEXT,
    at BIGINT NOT NULL
);
CREATE INDEX subprocessor_decisions_vendor ON subprocessor_decisions (vendor);
