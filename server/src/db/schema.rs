//! The database schema, for diesel and for the drift test. `accord_schema!` expands to diesel's
//! `table!` for each table and to [`TABLES`], a plain description the drift test compares with what
//! the migrations produce on each backend.

/// A table as schema.rs declares it: name and (column, diesel SQL type) pairs.
#[derive(Debug, Clone, Copy)]
pub struct TableDef {
    pub name: &'static str,
    pub columns: &'static [(&'static str, &'static str)],
}

macro_rules! accord_schema {
    ($( $table:ident ($($pk:ident),+) { $( $col:ident -> $ty:ty, )+ } )+) => {
        $(
            diesel::table! {
                $table ($($pk),+) {
                    $( $col -> $ty, )+
                }
            }
        )+

        /// Every table schema.rs declares, in declaration order.
        pub const TABLES: &[TableDef] = &[
            $( TableDef { name: stringify!($table), columns: &[ $( (stringify!($col), stringify!($ty)) ),+ ] } ),+
        ];
    };
}

accord_schema! {
    ledger_tree_state (id) {
        id -> Integer,
        origin -> Text,
        size -> BigInt,
        root -> Text,
        frontier -> Text,
        last_leaf -> Text,
        last_at -> BigInt,
        checkpoint_size -> BigInt,
    }

    ledger_entries (seq) {
        seq -> BigInt,
        body -> Text,
        leaf_hash -> Text,
        at -> BigInt,
        kind -> Text,
        entity -> Text,
        subject_ref -> Nullable<Text>,
        request_id -> Nullable<Text>,
    }

    ledger_payloads (seq) {
        seq -> BigInt,
        salt -> Nullable<Text>,
        payload -> Nullable<Text>,
        redacted_by -> Nullable<BigInt>,
    }

    ledger_nodes (level, idx) {
        level -> Integer,
        idx -> BigInt,
        hash -> Text,
    }

    ledger_checkpoints (size) {
        size -> BigInt,
        root -> Text,
        note -> Text,
        published_at -> BigInt,
    }

    users (id) {
        id -> Text,
        email -> Text,
        name -> Text,
        password_hash -> Nullable<Text>,
        disabled -> Bool,
        session_epoch -> BigInt,
        locked_until -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_seq -> BigInt,
    }

    user_roles (user_id, role) {
        user_id -> Text,
        role -> Text,
        granted_seq -> BigInt,
    }

    api_tokens (jti) {
        jti -> Text,
        client -> Text,
        roles -> Text,
        issued_at -> BigInt,
        expires_at -> BigInt,
        minted_by -> Text,
        revoked_at -> Nullable<BigInt>,
        revoked_by -> Nullable<Text>,
    }

    setup_links (token_hash) {
        token_hash -> Text,
        purpose -> Text,
        user_id -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }

    purposes (key, version) {
        key -> Text,
        version -> Integer,
        title -> Text,
        description -> Text,
        legal_basis -> Text,
        consent_required -> Bool,
        lifetime_days -> Nullable<Integer>,
        gpc_applies -> Bool,
        dpv_iri -> Nullable<Text>,
        status -> Text,
        at -> BigInt,
        seq -> BigInt,
    }

    notices (key, version) {
        key -> Text,
        version -> Text,
        text_hash -> Text,
        url -> Text,
        effective_at -> BigInt,
        at -> BigInt,
        seq -> BigInt,
    }

    consent_records (seq) {
        seq -> BigInt,
        subject -> Text,
        purpose -> Text,
        channel -> Text,
        decision -> Text,
        legal_basis -> Text,
        method -> Text,
        notice_key -> Nullable<Text>,
        notice_version -> Nullable<Text>,
        collected_at -> BigInt,
        expires_at -> Nullable<BigInt>,
        jurisdiction -> Nullable<Text>,
        source -> Nullable<Text>,
        gpc -> Bool,
        evidence -> Nullable<Text>,
        fingerprint -> Text,
    }

    idempotency_keys (caller, key) {
        caller -> Text,
        key -> Text,
        request_hash -> Text,
        status -> Integer,
        response -> Text,
        subject_ref -> Nullable<Text>,
        created_at -> BigInt,
    }

    vendors (id, version) {
        id -> Text,
        version -> Integer,
        name -> Text,
        legal_name -> Nullable<Text>,
        country -> Text,
        role -> Text,
        contact -> Nullable<Text>,
        status -> Text,
        parent -> Nullable<Text>,
        data_categories -> Text,
        at -> BigInt,
        seq -> BigInt,
    }

    dpas (id) {
        id -> Text,
        vendor -> Text,
        at -> BigInt,
        seq -> BigInt,
        terminated_at -> Nullable<BigInt>,
        termination_reason -> Nullable<Text>,
        terminated_seq -> Nullable<BigInt>,
    }

    dpa_versions (dpa, version) {
        dpa -> Text,
        version -> Integer,
        reference -> Text,
        signed_on -> Text,
        effective_from -> BigInt,
        expires_at -> Nullable<BigInt>,
        purposes -> Text,
        data_categories -> Text,
        clauses -> Text,
        transfers -> Text,
        document_sha256 -> Nullable<Text>,
        status -> Text,
        reminder_days -> Text,
        at -> BigInt,
        seq -> BigInt,
    }

    dpa_documents (dpa, version) {
        dpa -> Text,
        version -> Integer,
        sha256 -> Text,
        media_type -> Text,
        size -> BigInt,
        at -> BigInt,
        seq -> BigInt,
    }

    dpa_document_bytes (sha256) {
        sha256 -> Text,
        bytes -> Binary,
    }

    subprocessor_decisions (seq) {
        seq -> BigInt,
        vendor -> Text,
        parent -> Text,
        decision -> Text,
        decided_on -> Text,
        note -> Nullable<Text>,
        at -> BigInt,
    }

    outbox (id) {
        id -> Text,
        channel -> Text,
        about -> Text,
        grp -> Text,
        due_at -> BigInt,
        recipients -> Text,
        subject -> Text,
        body -> Text,
        link -> Nullable<Text>,
        seq -> BigInt,
        state -> Text,
        done_seq -> Nullable<BigInt>,
        done_at -> Nullable<BigInt>,
        sent_to -> Nullable<Text>,
    }

    leases (key) {
        key -> Text,
        failures -> Integer,
        next_at -> BigInt,
        owner -> Nullable<Text>,
        until -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
    }

    webhooks (id) {
        id -> Text,
        url -> Text,
        kinds -> Text,
        secret_sha256 -> Text,
        seq -> BigInt,
        created_by -> Text,
        at -> BigInt,
        deleted_seq -> Nullable<BigInt>,
    }

    webhook_secrets (id) {
        id -> Text,
        secret -> Text,
    }

    webhook_cursors (id) {
        id -> Text,
        delivered_seq -> BigInt,
    }

    webhook_deliveries (webhook, seq) {
        webhook -> Text,
        seq -> BigInt,
        kind -> Text,
        tries -> Integer,
        state -> Text,
        http_status -> Nullable<Integer>,
        error -> Nullable<Text>,
        at -> BigInt,
    }
}

diesel::joinable!(user_roles -> users (user_id));

diesel::joinable!(ledger_payloads -> ledger_entries (seq));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    user_roles,
    api_tokens,
    setup_links,
    ledger_tree_state,
    ledger_entries,
    ledger_payloads,
    ledger_nodes,
    ledger_checkpoints,
    purposes,
    notices,
    consent_records,
    idempotency_keys,
    vendors,
    dpas,
    dpa_versions,
    dpa_documents,
    dpa_document_bytes,
    subprocessor_decisions,
    outbox,
    leases,
    webhooks,
    webhook_secrets,
    webhook_cursors,
    webhook_deliveries,
);
