-- The ledger: entries (leaf bodies), their salted payloads, stored Merkle nodes, signed checkpoints,
-- and the one-row tree state every append locks. Entries, nodes and checkpoints are append-only;
-- a payload may only be redacted (salt and data removed, naming the erasure entry).

CREATE TABLE ledger_tree_state (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 0),
    origin TEXT NOT NULL,
    size BIGINT NOT NULL CHECK (size >= 0),
    root TEXT NOT NULL,
    frontier TEXT NOT NULL,
    last_leaf TEXT NOT NULL,
    last_at BIGINT NOT NULL,
    checkpoint_size BIGINT NOT NULL CHECK (checkpoint_size >= 0 AND checkpoint_size <= size)
);

CREATE TABLE ledger_entries (
    seq BIGINT PRIMARY KEY NOT NULL CHECK (seq >= 0),
    body TEXT NOT NULL,
    leaf_hash TEXT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    entity TEXT NOT NULL,
    subject_ref TEXT,
    request_id TEXT
);
CREATE INDEX ledger_entries_subject_ref ON ledger_entries (subject_ref) WHERE subject_ref IS NOT NULL;
CREATE INDEX ledger_entries_entity ON ledger_entries (entity);

CREATE TABLE ledger_payloads (
    seq BIGINT PRIMARY KEY NOT NULL REFERENCES ledger_entries (seq),
    salt TEXT,
    payload TEXT,
    redacted_by BIGINT,
    CHECK ((salt IS NULL AND payload IS NULL AND redacted_by IS NOT NULL)
        OR (salt IS NOT NULL AND payload IS NOT NULL AND redacted_by IS NULL))
);

CREATE TABLE ledger_nodes (
    level INTEGER NOT NULL CHECK (level > 0),
    idx BIGINT NOT NULL CHECK (idx >= 0),
    hash TEXT NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TABLE ledger_checkpoints (
    size BIGINT PRIMARY KEY NOT NULL CHECK (size >= 0),
    root TEXT NOT NULL,
    note TEXT NOT NULL,
    published_at BIGINT NOT NULL
);

CREATE FUNCTION accord_ledger_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % is not permitted: the ledger is append-only', TG_OP, TG_TABLE_NAME;
END
$$;

CREATE FUNCTION accord_ledger_payload_redact_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.redacted_by IS NULL AND NEW.seq = OLD.seq AND NEW.salt IS NULL
       AND NEW.payload IS NULL AND NEW.redacted_by IS NOT NULL AND NEW.redacted_by > OLD.seq THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% on ledger_payloads is not permitted: only redaction is', TG_OP;
END
$$;

CREATE FUNCTION accord_ledger_tree_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.size < OLD.size OR NEW.checkpoint_size < OLD.checkpoint_size OR NEW.origin <> OLD.origin THEN
        RAISE EXCEPTION 'ledger_tree_state only moves forward';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION accord_ledger_reject_change();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION accord_ledger_reject_change();
CREATE TRIGGER ledger_nodes_append_only BEFORE UPDATE OR DELETE ON ledger_nodes
    FOR EACH ROW EXECUTE FUNCTION accord_ledger_reject_change();
CREATE TRIGGER ledger_nodes_no_truncate BEFORE TRUNCATE ON ledger_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION accord_ledger_reject_change();
CREATE TRIGGER ledger_checkpoints_append_only BEFORE UPDATE OR DELETE ON ledger_checkpoints
    FOR EACH ROW EXECUTE FUNCTION accord_ledger_reject_change();
CREATE TRIGGER ledger_checkpoints_no_truncate BEFORE TRUNCATE ON ledger_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION accord_ledger_reject_change();
CREATE TRIGGER ledger_payloads_redact_only BEFORE UPDATE OR DELETE ON ledger_payloads
    FOR EACH ROW EXECUTE FUNCTION accord_ledger_payload_redact_only();
CREATE TRIGGER ledger_payloads_no_truncate BEFORE TRUNCATE ON ledger_payloads
    FOR EACH STATEMENT EXECUTE FUNCTION accord_ledger_reject_change();
CREATE TRIGGER ledger_tree_state_no_delete BEFORE DELETE ON ledger_tree_state
    FOR EACH ROW EXECUTE FUNCTION accord_ledger_reject_change();
CREATE TRIGGER ledger_tree_state_forward_only BEFORE UPDATE ON ledger_tree_state
    FOR EACH ROW EXECUTE FUNCTION accord_ledger_tree_forward_only();
CREATE TRIGGER ledger_tree_state_no_truncate BEFORE TRUNCATE ON ledger_tree_state
    FOR EACH STATEMENT EXECUTE FUNCTION accord_ledger_reject_change();

-- ENABLE ALWAYS: the triggers fire even under session_replication_role = replica.
ALTER TABLE ledger_entries ENABLE ALWAYS TRIGGER ledger_entries_append_only;
ALTER TABLE ledger_entries ENABLE ALWAYS TRIGGER ledger_entries_no_truncate;
ALTER TABLE ledger_nodes ENABLE ALWAYS TRIGGER ledger_nodes_append_only;
ALTER TABLE ledger_nodes ENABLE ALWAYS TRIGGER ledger_nodes_no_truncate;
ALTER TABLE ledger_checkpoints ENABLE ALWAYS TRIGGER ledger_checkpoints_append_only;
ALTER TABLE ledger_checkpoints ENABLE ALWAYS TRIGGER ledger_checkpoints_no_truncate;
ALTER TABLE ledger_payloads ENABLE ALWAYS TRIGGER ledger_payloads_redact_only;
ALTER TABLE ledger_payloads ENABLE ALWAYS TRIGGER ledger_payloads_no_truncate;
ALTER TABLE ledger_tree_state ENABLE ALWAYS TRIGGER ledger_tree_state_no_delete;
ALTER TABLE ledger_tree_state ENABLE ALWAYS TRIGGER ledger_tree_state_no_truncate;
ALTER TABLE ledger_tree_state ENABLE ALWAYS TRIGGER ledger_tree_state_forward_only;
