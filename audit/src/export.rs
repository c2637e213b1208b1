//! The JSON Lines export: a header line, then every entry in seq order, each checkpoint right
//! after the entry that brings the tree to its size.

use std::collections::BTreeMap;
use std::io::{BufRead, Read as _};
use std::sync::{Mutex, mpsc};

use serde::{Deserialize, Serialize};

use crate::bytes::find_byte;
use crate::canon::{DuplicateMember, duplicate_member};
use crate::note::NoteVerifier;
pub use crate::payload::PayloadRecord;
use crate::scan::{self, FastBody, FastLine, FastPayload};
use crate::verify::{
    BodyInput, CheckKind, Failure, HashField, LedgerVerifier, Log, PayloadView, PreparedCheck,
    PreparedEntry, Report, Scratch, kind_of, prepare_entry,
};

/// The `format` value of the header line this crate writes and reads.
pub const EXPORT_FORMAT: &str = "accord-ledger-export/v1";

/// Longest line [`verify_export`] accepts, so a hostile file cannot make it buffer without bound.
pub const MAX_LINE_BYTES: u64 = 64 * 1024 * 1024;

/// One line of an export, tagged by `"type"`. Reading refuses members other than those named here,
/// so nothing in a line can go unread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ExportLine {
    /// The first line.
    Header {
        /// Always [`EXPORT_FORMAT`].
        format: String,
        /// The log origin.
        origin: String,
        /// The log's verifier key (`name+id+base64`).
        verifier_key: String,
        /// The latest signed checkpoint note when the export was taken.
        checkpoint: String,
        /// Number of entry lines that follow.
        entries: u64,
    },
    /// One ledger entry.
    Entry {
        /// Its position.
        seq: u64,
        /// The canonical leaf body text.
        body: String,
        /// Lowercase hex leaf hash as stored.
        leaf_hash: String,
        /// The payload, or the erasure that removed it.
        payload: PayloadRecord,
    },
    /// A signed checkpoint note, written right after the entry that brings the tree to its size.
    Checkpoint {
        /// The signed note.
        note: String,
    },
}

/// Bytes of whole lines one thread prepares at a time (a longer line makes a longer job). At
/// most [`JOBS_PER_THREAD`] jobs per thread are in flight, so memory stays bounded, and small
/// enough that the lines are still in the cache when they are prepared.
const JOB_BYTES: usize = 1 << 18;

/// Jobs in flight per thread: enough to keep every thread busy while lines are read and applied.
const JOBS_PER_THREAD: usize = 8;

/// How [`verify_export`] judges what the signatures do not cover. The default is the strict one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Accept entries after the last signed checkpoint (an export whose header counts more
    /// entries than its checkpoint's size): they are verified as far as hashes go and reported
    /// as [`Report::unsigned_tail`], but nothing vouches for them. A redaction whose erasure entry
    /// is among them is refused all the same. Off by default: the exporter always ends an export
    /// at its header's checkpoint.
    pub allow_unsigned_tail: bool,
}

/// Verifies an export streamed from `input`, holding a bounded batch of lines at a time.
///
/// The first line must be a header with `format == EXPORT_FORMAT`. The log key is the header's
/// `verifier_key`, unless `key` is given: then the header must carry that same key (an export
/// cannot choose its own trust root), and [`Report::key_pinned`] says which. `pins` are auditors'
/// kept checkpoint notes. The header's checkpoint is checked like any other, and the header's
/// `entries` must equal its size (more is accepted only with
/// [`VerifyOptions::allow_unsigned_tail`]), else the failure names line 1 and both numbers; fewer
/// entries than the header's `entries` (or than a checkpoint's size) fails as "truncated". The
/// end is judged by [`LedgerVerifier::finish_with`]: a redaction's erasure entry must be signed,
/// and so must every entry unless `options` allow an unsigned tail. A line that is not a valid export line fails naming
/// its line number (1-based), and so does a line with a member name repeated within one object
/// (in the line itself, at any depth, or in an entry's body), naming the name.
///
/// Each batch of lines is parsed and checked on all cores; the checks linking entries run in
/// order, so the failure reported is the first one in the file, exactly as if the lines were
/// verified one by one.
pub fn verify_export<R: BufRead>(
    input: R,
    pins: &[String],
    key: Option<NoteVerifier>,
    options: VerifyOptions,
) -> Result<Report, Failure> {
    verify_export_with(input, pins, key, options, Tuning::default())
}

/// How [`verify_export`] splits its work; tests use small jobs and other thread counts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    /// Worker threads; the machine's available parallelism when `None`.
    pub(crate) threads: Option<usize>,
    /// Bytes of whole lines per job.
    pub(crate) job_bytes: usize,
    /// The longest line accepted ([`MAX_LINE_BYTES`]).
    pub(crate) max_line: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            threads: None,
            job_bytes: JOB_BYTES,
            max_line: usize::try_from(MAX_LINE_BYTES).unwrap_or(usize::MAX - 1),
        }
    }
}

/// [`verify_export`] with the given tuning.
pub(crate) fn verify_export_with<R: BufRead>(
    mut input: R,
    pins: &[String],
    key: Option<NoteVerifier>,
    options: VerifyOptions,
    tuning: Tuning,
) -> Result<Report, Failure> {
    let mut line = String::new();
    let mut line_no = 0u64;

    if !next_line(&mut input, &mut line, &mut line_no, tuning.max_line)? {
        return Err(Failure::general(
            "the export is empty: there is no header line",
        ));
    }
    let header = parse_line(&line).map_err(|e| match e {
        LineError::Invalid(e) => {
            Failure::general(format!("line 1: not a valid export header: {e}"))
        }
        duplicate => Failure::general(format!("line 1: {}", duplicate.reason())),
    })?;
    let ExportLine::Header {
        format,
        origin,
        verifier_key,
        checkpoint,
        entries,
    } = header
    else {
        return Err(Failure::general(
            "line 1: the first line must be the header",
        ));
    };
    if format != EXPORT_FORMAT {
        return Err(Failure::general(format!(
            "line 1: format {format:?} is not {EXPORT_FORMAT:?}"
        )));
    }
    let header_key = NoteVerifier::parse(&verifier_key).map_err(|e| {
        Failure::general(format!("line 1: the header's verifier_key is invalid: {e}"))
    })?;
    let pinned = key.is_some();
    let key = match key {
        Some(expected) => {
            if expected != header_key {
                return Err(Failure::general(format!(
                    "the export's verifier key {} is not the expected key {}",
                    header_key.to_vkey(),
                    expected.to_vkey()
                )));
            }
            expected
        }
        None => header_key,
    };

    let mut verifier = LedgerVerifier::new(&origin, key);
    if !pinned {
        verifier.set_key_from_data();
    }
    if let Some(threads) = tuning.threads {
        verifier.set_threads(threads);
    }
    for pin in pins {
        verifier.pin(pin)?;
    }
    let signed = verifier.header_checkpoint(&checkpoint)?;
    check_header_count(entries, signed, options)?;

    let mut run = Run {
        verifier,
        entries,
        seen: 0,
        line_no,
        job_bytes: tuning.job_bytes.max(1),
        max_line: tuning.max_line,
    };
    run.all_lines(&mut input)?;
    let Run {
        verifier,
        entries,
        seen,
        ..
    } = run;
    if seen < entries {
        return Err(Failure::at_seq(
            seen,
            format!(
                "truncated: the export ends after {seen} entries but its header says {entries}"
            ),
        ));
    }
    verifier.finish_with(options.allow_unsigned_tail)
}

/// The header's `entries` against the size of its (signed) checkpoint: equal, as the exporter
/// writes them; more only when an unsigned tail is allowed.
pub(crate) fn check_header_count(
    entries: u64,
    signed: u64,
    options: VerifyOptions,
) -> Result<(), Failure> {
    if entries == signed || (entries > signed && options.allow_unsigned_tail) {
        return Ok(());
    }
    let hint = if entries > signed {
        format!(
            " (the {} entries after it would be covered by no signed checkpoint; pass --allow-unsigned-tail to accept an unsigned tail)",
            entries - signed
        )
    } else {
        String::new()
    };
    Err(Failure::general(format!(
        "line 1: the header says {entries} entries, but its checkpoint is at size {signed}: the two must be equal{hint}"
    )))
}

/// The lines after the header, verified job by job.
struct Run {
    verifier: LedgerVerifier,
    /// Entries the header announces.
    entries: u64,
    /// Entry lines verified.
    seen: u64,
    /// Lines handled so far, the header included.
    line_no: u64,
    /// Bytes of whole lines per job.
    job_bytes: usize,
    /// The longest line accepted.
    max_line: usize,
}

/// Whole lines for one thread to prepare, and what it made of them.
#[derive(Debug, Default)]
struct Job {
    /// The lines are `data[..len]`; the rest is room to read into.
    data: Vec<u8>,
    len: usize,
    out: Vec<PreparedLine>,
}

/// A line, checked as far as it can be without the lines before it.
#[derive(Debug)]
struct PreparedLine {
    /// Its bytes within the job.
    start: usize,
    end: usize,
    outcome: Outcome,
}

#[derive(Debug)]
enum Outcome {
    Entry(PreparedEntry),
    Checkpoint(PreparedCheck),
    /// A second header line.
    Header,
    /// A member name repeated in one object (the reason, after "line N: ").
    Duplicate(String),
    /// Not a valid export line; `complete` when it ends with a newline.
    Invalid {
        error: String,
        complete: bool,
    },
    /// Not UTF-8 (the reader's error text).
    Unreadable(String),
    /// Longer than the longest line accepted.
    TooLong,
}

/// Where the reading stands.
#[derive(Debug, Default)]
struct Reading {
    /// The start of a line whose end has not been read yet.
    carry: Vec<u8>,
    /// Nothing more to read: the input ended, failed, or holds an over-long line.
    done: bool,
    /// The read error to report once the lines before it are verified.
    error: Option<std::io::Error>,
}

impl Run {
    /// Reads, prepares and applies the rest of the input. The calling thread reads jobs of whole
    /// lines and queues them; worker threads (one fewer than the threads to use) and the calling
    /// thread itself, whenever it would otherwise wait, take queued jobs and prepare them; the
    /// calling thread applies the prepared lines in file order. A few jobs per thread are in
    /// flight, so that reading, preparing and applying overlap.
    fn all_lines<R: BufRead>(&mut self, input: &mut R) -> Result<(), Failure> {
        let threads = self.verifier.threads().max(1);
        let log = self.verifier.log().clone();
        let (job_tx, job_rx) = mpsc::channel::<(usize, Job)>();
        let job_rx = Mutex::new(job_rx);
        let (done_tx, done_rx) = mpsc::channel::<(usize, Job)>();
        std::thread::scope(|scope| {
            for _ in 1..threads {
                let (log, job_rx, done_tx) = (&log, &job_rx, done_tx.clone());
                let max_line = self.max_line;
                scope.spawn(move || {
                    let done = PanicSignal(done_tx);
                    let mut scratch = Scratch::default();
                    // Whichever thread is free takes the next job.
                    let next = || job_rx.lock().ok().and_then(|rx| rx.recv().ok());
                    while let Some((index, mut job)) = next() {
                        job.prepare(log, &mut scratch, max_line);
                        if done.0.send((index, job)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(done_tx);
            let queue = Queue {
                log: &log,
                to_workers: job_tx,
                from_workers: done_rx,
                jobs: &job_rx,
            };
            // Returning drops the channels, which stops the workers.
            self.pipeline(input, threads, queue)
        })
    }

    fn pipeline<R: BufRead>(
        &mut self,
        input: &mut R,
        threads: usize,
        queue: Queue<'_>,
    ) -> Result<(), Failure> {
        let in_flight = threads * JOBS_PER_THREAD;
        let mut reading = Reading::default();
        let mut scratch = Scratch::default();
        let mut spare: Vec<Job> = Vec::new();
        // Prepared jobs not applied yet, by index.
        let mut ready: BTreeMap<usize, Job> = BTreeMap::new();
        let mut sent = 0usize;
        let mut applied = 0usize;
        loop {
            while !reading.done && sent - applied < in_flight {
                let mut job = spare.pop().unwrap_or_default();
                read_job(input, &mut reading, &mut job, self.job_bytes, self.max_line);
                if job.len == 0 {
                    spare.push(job);
                    continue;
                }
                queue.to_workers.send((sent, job)).map_err(|_| stopped())?;
                sent += 1;
            }
            if applied == sent {
                break;
            }
            let Some(mut job) = ready.remove(&applied) else {
                // Collect what the workers finished; if the next job is not among it, prepare a
                // queued job here rather than wait, and wait only when none is left.
                let (index, job) = match queue.from_workers.try_recv() {
                    Ok(done) => done,
                    // Nothing finished (or no workers at all).
                    Err(_) => match queue.take() {
                        Some((index, mut job)) => {
                            job.prepare(queue.log, &mut scratch, self.max_line);
                            (index, job)
                        }
                        None => queue.from_workers.recv().map_err(|_| stopped())?,
                    },
                };
                if index == STOPPED {
                    return Err(stopped());
                }
                ready.insert(index, job);
                continue;
            };
            applied += 1;
            let data = &job.data[..job.len];
            for line in job.out.drain(..) {
                self.apply(line, data)?;
            }
            if job.data.len() <= 2 * self.job_bytes {
                spare.push(job);
            }
        }
        match reading.error {
            Some(e) => Err(Failure::general(format!(
                "line {}: cannot be read: {e}",
                self.line_no + 1
            ))),
            None => Ok(()),
        }
    }

    /// The checks of one line that depend on the lines before it, in file order.
    fn apply(&mut self, line: PreparedLine, data: &[u8]) -> Result<(), Failure> {
        self.line_no += 1;
        let line_no = self.line_no;
        match line.outcome {
            Outcome::Entry(entry) => {
                if self.seen == self.entries {
                    return Err(Failure::at_seq(
                        entry.seq,
                        format!(
                            "the export has more entries than its header says ({})",
                            self.entries
                        ),
                    ));
                }
                let text = &data[line.start..line.end];
                self.verifier.apply_entry(entry, || kind_in_line(text))?;
                self.seen += 1;
                Ok(())
            }
            Outcome::Checkpoint(check) => self.verifier.apply_check(check),
            Outcome::Header => Err(Failure::general(format!(
                "line {line_no}: a second header line"
            ))),
            Outcome::Duplicate(reason) => {
                Err(Failure::general(format!("line {line_no}: {reason}")))
            }
            // A last line without its newline that does not parse was most likely cut off.
            Outcome::Invalid { error, complete } => Err(Failure::general(if complete {
                format!("line {line_no}: not a valid export line: {error}")
            } else {
                format!("line {line_no}: truncated: the last line is incomplete ({error})")
            })),
            Outcome::Unreadable(e) => Err(Failure::general(format!(
                "line {line_no}: cannot be read: {e}"
            ))),
            Outcome::TooLong => Err(Failure::general(format!(
                "line {line_no}: longer than {} bytes",
                self.max_line
            ))),
        }
    }
}

/// The jobs between the reading thread and the workers.
struct Queue<'a> {
    log: &'a Log,
    to_workers: mpsc::Sender<(usize, Job)>,
    from_workers: mpsc::Receiver<(usize, Job)>,
    /// The workers' end of `to_workers`, which the reading thread also takes jobs from.
    jobs: &'a Mutex<mpsc::Receiver<(usize, Job)>>,
}

impl Queue<'_> {
    /// A queued job no worker has taken yet, if any. Never blocks: a worker holds the lock while
    /// it waits for a job, and then the queue is empty anyway.
    fn take(&self) -> Option<(usize, Job)> {
        self.jobs.try_lock().ok()?.try_recv().ok()
    }
}

/// The job index a worker sends when it panics, so the reading thread stops waiting for it.
const STOPPED: usize = usize::MAX;

/// A worker's channel back; on a panic it tells the reading thread (the scope then passes the
/// panic on once every thread has ended).
struct PanicSignal(mpsc::Sender<(usize, Job)>);

impl Drop for PanicSignal {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.0.send((STOPPED, Job::default()));
        }
    }
}

/// A worker thread ended without handing back its job, which only a panic does (and the scope
/// then passes the panic on).
fn stopped() -> Failure {
    Failure::general("a verification thread stopped unexpectedly")
}

/// Fills `job` with the next whole lines: about `job_bytes`, more if one line is longer. At
/// the end of the input the last line may lack its newline. A line longer than `max_line` ends
/// the reading (its job fails it); so does a read error, which is kept
/// in `reading` for after the lines read before it.
fn read_job<R: BufRead>(
    input: &mut R,
    reading: &mut Reading,
    job: &mut Job,
    job_bytes: usize,
    max_line: usize,
) {
    job.out.clear();
    let room = job_bytes.max(reading.carry.len() + 1);
    if job.data.len() < room {
        job.data.resize(room, 0);
    }
    job.data[..reading.carry.len()].copy_from_slice(&reading.carry);
    let mut filled = reading.carry.len();
    reading.carry.clear();
    loop {
        while filled < job.data.len() {
            match input.read(&mut job.data[filled..]) {
                Ok(0) => {
                    reading.done = true;
                    job.len = filled;
                    return;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    reading.done = true;
                    reading.error = Some(e);
                    break;
                }
            }
        }
        let whole = job.data[..filled]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        if whole > 0 || reading.done {
            reading.carry.extend_from_slice(&job.data[whole..filled]);
            job.len = whole;
            return;
        }
        if filled > max_line {
            // One line already longer than allowed: its job fails it.
            reading.done = true;
            job.len = filled;
            return;
        }
        // One line fills the buffer: read on until it ends or proves too long.
        let grown = job.data.len().saturating_mul(2).min(max_line + 1);
        job.data.resize(grown.max(job.data.len() + 1), 0);
    }
}

impl Job {
    /// Prepares the lines in `data[..len]`.
    fn prepare(&mut self, log: &Log, scratch: &mut Scratch, max_line: usize) {
        self.out.clear();
        let chunk = &self.data[..self.len];
        let mut pos = 0;
        while pos < chunk.len() {
            // Lines in this crate's layout are read in place, and say where they end.
            let (outcome, end) = match fast_line(log, chunk, pos, scratch) {
                Some((outcome, end)) if end - pos <= max_line => (outcome, end),
                _ => {
                    let end = (find_byte(chunk, pos, b'\n') + 1).min(chunk.len());
                    (prepare_line(log, &chunk[pos..end], scratch, max_line), end)
                }
            };
            self.out.push(PreparedLine {
                start: pos,
                end,
                outcome,
            });
            pos = end;
        }
    }
}

/// A line in the layout this crate writes, read by [`scan::export_line`], and where it ends.
fn fast_line(
    log: &Log,
    bytes: &[u8],
    start: usize,
    scratch: &mut Scratch,
) -> Option<(Outcome, usize)> {
    let Scratch { canon, decoded } = scratch;
    decoded.text.clear();
    let (line, end) = scan::export_line(bytes, start, decoded)?;
    let outcome = match line {
        FastLine::Entry {
            seq,
            body,
            leaf_hash,
            payload,
        } => {
            let body = match body {
                FastBody::Canonical { fields } => BodyInput::Read {
                    bytes: decoded.body(),
                    fields,
                },
                // A body in the canonical layout has each member once; any other is checked.
                FastBody::Text { start } => {
                    let text = decoded.text.get(start..)?;
                    if let Ok(Some(member)) = duplicate_member(text) {
                        let reason = LineError::DuplicateInBody(member).reason();
                        return Some((Outcome::Duplicate(reason), end));
                    }
                    BodyInput::Text(text)
                }
            };
            let payload = match payload {
                FastPayload::Open { salt, data } => PayloadView::Canonical { salt, data },
                FastPayload::Redacted(by) => PayloadView::Redacted(by),
            };
            Outcome::Entry(prepare_entry(
                log.origin(),
                seq,
                body,
                HashField::Decoded(leaf_hash),
                payload,
                canon,
            ))
        }
        FastLine::Checkpoint { note_start } => Outcome::Checkpoint(
            log.prepare_check(decoded.text.get(note_start..)?, CheckKind::Checkpoint),
        ),
    };
    Some((outcome, end))
}

/// One line's checks that do not depend on the lines before it, for a line the fast reader
/// left: parsed by `serde_json` exactly as a line-by-line reader would.
fn prepare_line(log: &Log, line: &[u8], scratch: &mut Scratch, max_line: usize) -> Outcome {
    if line.len() > max_line {
        // A line reader stops after `max_line` + 1 bytes, which must still be UTF-8.
        let head = &line[..max_line + 1];
        return match std::str::from_utf8(head) {
            Ok(_) => Outcome::TooLong,
            Err(_) => Outcome::Unreadable(utf8_error(head)),
        };
    }
    let Ok(text) = std::str::from_utf8(line) else {
        return Outcome::Unreadable(utf8_error(line));
    };
    match parse_line(text) {
        Err(LineError::Invalid(error)) => Outcome::Invalid {
            error,
            complete: text.ends_with('\n'),
        },
        Err(duplicate) => Outcome::Duplicate(duplicate.reason()),
        Ok(ExportLine::Header { .. }) => Outcome::Header,
        Ok(ExportLine::Entry {
            seq,
            body,
            leaf_hash,
            payload,
        }) => Outcome::Entry(prepare_entry(
            log.origin(),
            seq,
            BodyInput::Text(&body),
            HashField::Text(&leaf_hash),
            (&payload).into(),
            &mut scratch.canon,
        )),
        Ok(ExportLine::Checkpoint { note }) => {
            Outcome::Checkpoint(log.prepare_check(&note, CheckKind::Checkpoint))
        }
    }
}

/// Why [`parse_line`] refused a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LineError {
    /// Not an export line (`serde_json`'s reason).
    Invalid(String),
    /// A member name repeated in one object of the line.
    Duplicate(DuplicateMember),
    /// A member name repeated in one object of an entry's body.
    DuplicateInBody(DuplicateMember),
}

impl LineError {
    /// The reason, to follow "line N: ".
    pub(crate) fn reason(&self) -> String {
        match self {
            LineError::Invalid(e) => format!("not a valid export line: {e}"),
            LineError::Duplicate(m) => format!(
                "duplicate member name {:?} (at {}): a name may appear only once in an object",
                m.name, m.path
            ),
            LineError::DuplicateInBody(m) => format!(
                "duplicate member name {:?} in the entry's body (at {}): a name may appear only once in an object",
                m.name, m.path
            ),
        }
    }
}

/// One export line as `serde_json` reads it, refused when a member name appears twice in one
/// object of the line (header, entry, payload and payload data at any depth) or of an entry's
/// body: `serde_json` would silently keep the last, another reader the first.
pub(crate) fn parse_line(text: &str) -> Result<ExportLine, LineError> {
    let unique = duplicate_member(text);
    if let Ok(Some(member)) = unique {
        return Err(LineError::Duplicate(member));
    }
    let line =
        serde_json::from_str::<ExportLine>(text).map_err(|e| LineError::Invalid(e.to_string()))?;
    // Whatever `serde_json` reads, the walk reads too (the same parser, the same nesting limit).
    if let Err(e) = unique {
        return Err(LineError::Invalid(e.to_string()));
    }
    if let ExportLine::Entry { body, .. } = &line
        && let Ok(Some(member)) = duplicate_member(body)
    {
        return Err(LineError::DuplicateInBody(member));
    }
    Ok(line)
}

/// What a line reader says about bytes that are not UTF-8.
fn utf8_error(bytes: &[u8]) -> String {
    let mut sink = String::new();
    match (&mut &bytes[..]).read_line(&mut sink) {
        Err(e) => e.to_string(),
        Ok(_) => "stream did not contain valid UTF-8".to_string(),
    }
}

/// The kind in an entry line's body, for a failure message that names it.
fn kind_in_line(line: &[u8]) -> String {
    match std::str::from_utf8(line).map(serde_json::from_str::<ExportLine>) {
        Ok(Ok(ExportLine::Entry { body, .. })) => kind_of(&body),
        _ => String::new(),
    }
}

/// Reads the next line (at most `max_line` bytes) into the reused buffer; false at end of input.
fn next_line<R: BufRead>(
    input: &mut R,
    line: &mut String,
    line_no: &mut u64,
    max_line: usize,
) -> Result<bool, Failure> {
    line.clear();
    *line_no += 1;
    let n = input
        .by_ref()
        .take(max_line as u64 + 1)
        .read_line(line)
        .map_err(|e| Failure::general(format!("line {line_no}: cannot be read: {e}")))?;
    if n > max_line {
        return Err(Failure::general(format!(
            "line {line_no}: longer than {max_line} bytes"
        )));
    }
    Ok(n > 0)
}

#[cfg(test)]
mod tests;
