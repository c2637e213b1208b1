DROP TABLE ledger_checkpoints;
DROP TABLE ledger_nodes;
DROP TABLE ledger_payloads;
DROP TABLE ledger_entries;
DROP TABLE ledger_tree_state;
DROP FUNCTION accord_ledger_payload_redact_only();
DROP FUNCTION accord_ledger_reject_change();
DROP FUNCTION accord_ledger_tree_forward_only();
