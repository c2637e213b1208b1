//! Messages that leave Accord, through a transactional outbox (DESIGN §2): a domain's projection
//! schedules a message in the same transaction as the event that decides it, so it is scheduled
//! exactly when that event is recorded (and rebuilt by replay); each instance's [`sender`] drains
//! what is due, one instance per item, and records each sending as a ledger entry. The module
//! knows no domain: the messages arrive written.

pub mod api;
pub mod events;
pub mod lease;
pub mod mailer;
pub mod projection;
pub mod sender;
pub mod store;
