//! Reads the ledger in order — entries with their payloads, and each checkpoint right after the entry
//! that brought the tree to its size — in pages, so export and verification run in constant memory.

use std::collections::VecDeque;

use accord_audit::export::PayloadRecord;

use super::store::{self, CheckpointRow, EntryColumns, EntryRow};
use crate::db::AnyConnection;
use crate::error::AppError;

const PAGE: i64 = 2000;

/// One item of the ledger, in order.
#[derive(Debug)]
pub enum Item {
    Entry {
        seq: u64,
        body: String,
        leaf_hash: String,
        /// The stored payload, or why it cannot be given (row missing, not JSON).
        payload: Result<PayloadRecord, String>,
        columns: EntryColumns,
    },
    Checkpoint(CheckpointRow),
}

/// Pages through entries `[0, until)` and checkpoints with size `<= until`.
pub struct LedgerStream {
    until: u64,
    next_seq: u64,
    entries: VecDeque<EntryRow>,
    entries_done: bool,
    last_cp: Option<u64>,
    checkpoints: VecDeque<CheckpointRow>,
    checkpoints_done: bool,
}

impl LedgerStream {
    pub fn new(until: u64) -> Self {
        LedgerStream {
            until,
            next_seq: 0,
            entries: VecDeque::new(),
            entries_done: false,
            last_cp: None,
            checkpoints: VecDeque::new(),
            checkpoints_done: false,
        }
    }

    /// Entries `[from, until)` only, without checkpoints (for paged reads).
    pub fn entries_only(from: u64, until: u64) -> Self {
        LedgerStream {
            next_seq: from,
            checkpoints_done: true,
            ..Self::new(until)
        }
    }

    pub fn next(&mut self, conn: &mut AnyConnection) -> Result<Option<Item>, AppError> {
        if self.entries.is_empty() && !self.entries_done {
            let page = store::entries_page(conn, self.next_seq, self.until, PAGE)?;
            if (page.len() as i64) < PAGE {
                self.entries_done = true;
            }
            if let Some(last) = page.last() {
                self.next_seq = last.seq.get() + 1;
            }
            self.entries.extend(page);
        }
        if self.checkpoints.is_empty() && !self.checkpoints_done {
            let page = store::checkpoints_page(conn, self.last_cp, self.until, PAGE)?;
            if (page.len() as i64) < PAGE {
                self.checkpoints_done = true;
            }
            if let Some(last) = page.last() {
                self.last_cp = Some(last.size.get());
            }
            self.checkpoints.extend(page);
        }
        let cp_first = match (self.checkpoints.front(), self.entries.front()) {
            (Some(cp), Some(e)) => cp.size <= e.seq,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if cp_first {
            return Ok(self.checkpoints.pop_front().map(Item::Checkpoint));
        }
        Ok(self.entries.pop_front().map(|e| Item::Entry {
            seq: e.seq.get(),
            payload: payload_record(&e),
            body: e.body,
            leaf_hash: e.leaf_hash,
            columns: e.columns,
        }))
    }
}

fn payload_record(e: &EntryRow) -> Result<PayloadRecord, String> {
    if !e.has_payload_row {
        return Err("the payload row is missing".into());
    }
    match (&e.salt, &e.payload, e.redacted_by) {
        (Some(salt), Some(data), None) => {
            // A repeated member name would read one way here and another way elsewhere.
            match accord_audit::canon::duplicate_member(data) {
                Ok(None) => {}
                Ok(Some(d)) => {
                    return Err(format!(
                        "the stored payload repeats the member {:?} at {}",
                        d.name, d.path
                    ));
                }
                Err(err) => return Err(format!("the stored payload is not JSON: {err}")),
            }
            serde_json::from_str(data)
                .map(|data| PayloadRecord::Open {
                    salt: salt.clone(),
                    data,
                })
                .map_err(|err| format!("the stored payload is not JSON: {err}"))
        }
        (None, None, Some(by)) => Ok(PayloadRecord::Redacted {
            redacted_by: by.get(),
        }),
        _ => {
            Err("the payload row is inconsistent (salt, data and redaction marker disagree)".into())
        }
    }
}
