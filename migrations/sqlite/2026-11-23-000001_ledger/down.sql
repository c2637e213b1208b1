DROP TABLE ledger_checkpoints;
DROP TABLE ledger_nodes;
DROP TABLE ledger_payloads;
DROP TABLE ledger_entries;
DROP TABLE ledger_tree_state;
