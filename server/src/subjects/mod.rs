//! Commands about a data subject that cut across domains (DESIGN §2). An erasure (GDPR Art. 17)
//! is one ledger entry: it redacts the payloads of every entry about the subject and, in the same
//! transaction, asks each domain to forget the subject (`forget_subject` beside each domain's
//! projection).

pub mod api;
pub mod service;
