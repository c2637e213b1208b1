//! End-to-end tests: the real application on SQLite and PostgreSQL.

mod access;
mod browser;
mod changes;
mod consent;
mod consent_model;
mod dpa;
mod grants;
mod idempotency;
mod instances;
mod ledger;
mod limits;
mod notify;
mod replay;
mod schema;
mod services;
mod support;
mod tamper;
