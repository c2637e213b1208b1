//! The JSON Lines export: a header line, then every entry in seq order, each checkpoint right
//! after the entry that brings the tree to its size.

use std::collections::BTreeMap;
use std::io::{BufRead, Read as _};
use std::sync::{Mutex, mpsc};

use serde::{Deserialize, Serialize};

use crate::canon::{DuplicateMember, duplicate_member};
use crate::note::NoteVerifier;
use crate::scan::{self, FastBody, FastLine, FastPayload, find_byte};
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

/// An entry's payload as exported: exactly `salt` and `data`, or exactly `redacted_by` (a payload
/// with both, which could be read either way, is refused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum PayloadRecord {
    /// The payload and its salt (64 lowercase hex).
    Open {
        /// The commitment salt, 64 lowercase hex characters.
        salt: String,
        /// The payload JSON.
        data: serde_json::Value,
    },
    /// Erased by the erasure entry `redacted_by`.
    Redacted {
        /// Seq of the erasure entry.
        redacted_by: u64,
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
mod tests {
    use super::*;
    use crate::builder::{LedgerBuilder, NewEntry, render};
    use crate::note::NoteSigner;
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;
    use serde_json::json;

    const ORIGIN: &str = "accord.test/log";

    /// The export verified line by line with [`LedgerVerifier::entry`] and
    /// [`LedgerVerifier::checkpoint`], holding one line at a time: what [`verify_export`] must
    /// agree with, result for result and failure for failure.
    fn reference<R: BufRead>(
        input: R,
        pins: &[String],
        key: Option<NoteVerifier>,
    ) -> Result<Report, Failure> {
        reference_with(
            input,
            pins,
            key,
            VerifyOptions::default(),
            Tuning::default().max_line,
        )
    }

    fn reference_with<R: BufRead>(
        mut input: R,
        pins: &[String],
        key: Option<NoteVerifier>,
        options: VerifyOptions,
        max_line: usize,
    ) -> Result<Report, Failure> {
        let mut line = String::new();
        let mut line_no = 0u64;
        if !next_line(&mut input, &mut line, &mut line_no, max_line)? {
            return Err(Failure::general(
                "the export is empty: there is no header line",
            ));
        }
        let Ok(ExportLine::Header {
            origin,
            verifier_key,
            checkpoint,
            entries,
            ..
        }) = parse_line(&line)
        else {
            unreachable!("the tests keep the header intact")
        };
        let pinned = key.is_some();
        let key = key.unwrap_or_else(|| NoteVerifier::parse(&verifier_key).unwrap());
        let mut verifier = LedgerVerifier::new(&origin, key);
        if !pinned {
            verifier.set_key_from_data();
        }
        for pin in pins {
            verifier.pin(pin)?;
        }
        let signed = verifier.header_checkpoint(&checkpoint)?;
        check_header_count(entries, signed, options)?;
        let mut seen = 0u64;
        while next_line(&mut input, &mut line, &mut line_no, max_line)? {
            let parsed = parse_line(&line).map_err(|e| match e {
                LineError::Invalid(e) if !line.ends_with('\n') => Failure::general(format!(
                    "line {line_no}: truncated: the last line is incomplete ({e})"
                )),
                e => Failure::general(format!("line {line_no}: {}", e.reason())),
            })?;
            match parsed {
                ExportLine::Header { .. } => {
                    return Err(Failure::general(format!(
                        "line {line_no}: a second header line"
                    )));
                }
                ExportLine::Entry {
                    seq,
                    body,
                    leaf_hash,
                    payload,
                } => {
                    if seen == entries {
                        return Err(Failure::at_seq(
                            seq,
                            format!("the export has more entries than its header says ({entries})"),
                        ));
                    }
                    verifier.entry(seq, &body, &leaf_hash, &payload)?;
                    seen += 1;
                }
                ExportLine::Checkpoint { note } => verifier.checkpoint(&note)?,
            }
        }
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

    fn signer() -> NoteSigner {
        NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[5; 32])).unwrap()
    }

    /// Entries of every shape the readers distinguish: bodies that need escapes, payloads with
    /// escapes, non-ASCII text, nesting, empty containers, negative numbers and erasures.
    fn entry(i: u64) -> NewEntry {
        let actor = match i % 7 {
            0 => "svc:crm \"quoted\"".to_string(),
            1 => "user:zoë".to_string(),
            _ => format!("svc:crm-{}", i % 3),
        };
        NewEntry {
            at: 1_763_884_800_000_000 + i as i64 * 977 - 5_000,
            actor,
            kind: "consent.recorded".into(),
            entity: format!("consent:s{}/marketing.email/any", i % 5),
            subject_ref: (!i.is_multiple_of(4)).then(|| format!("{:064x}", i % 3)),
            request_id: (!i.is_multiple_of(3)).then(|| format!("req-{i}")),
            payload: json!({
                "subject": format!("s{}", i % 5),
                "note": if i.is_multiple_of(5) { "line\nbreak \"q\" \\ \u{1} é 😀" } else { "plain" },
                "n": i,
                "neg": -(i as i64),
                "nested": {"list": [1, {"b": null, "a": true}, []], "empty": {}},
                "\u{e000}": 1,
                "\u{1f600}": 2,
            }),
            salt: [(i as u8).wrapping_mul(13).wrapping_add(3); 32],
        }
    }

    /// `n` entries, a checkpoint every 40, erasures now and then (each of the two latest entries
    /// of one subject); the export text.
    fn export(n: u64) -> String {
        let mut b = LedgerBuilder::new(ORIGIN, signer());
        for i in 0..n {
            if i % 29 == 28 {
                let s = b.size();
                let subject = Some(format!("{:064x}", s % 3));
                let mut seqs: Vec<u64> = (s - 12..s)
                    .rev()
                    .filter(|&k| entry(k).subject_ref == subject)
                    .take(2)
                    .collect();
                seqs.reverse();
                let mut erasure = entry(i);
                erasure.subject_ref = subject;
                b.erase(&seqs, erasure).unwrap();
            } else {
                b.append(entry(i)).unwrap();
            }
            if i % 40 == 39 {
                b.checkpoint().unwrap();
            }
        }
        b.export().unwrap()
    }

    fn tunings() -> [Tuning; 4] {
        let max_line = Tuning::default().max_line;
        [
            Tuning::default(),
            Tuning {
                threads: Some(1),
                job_bytes: 1,
                max_line,
            },
            Tuning {
                threads: Some(3),
                job_bytes: 700,
                max_line,
            },
            Tuning {
                threads: Some(4),
                job_bytes: 5000,
                max_line,
            },
        ]
    }

    fn check(text: &[u8], pins: &[String]) {
        let want = reference(text, pins, None);
        for tuning in tunings() {
            let got = verify_export_with(text, pins, None, VerifyOptions::default(), tuning);
            assert_eq!(got, want, "{tuning:?}");
        }
    }

    #[test]
    fn intact_export_agrees_with_the_reference() {
        let text = export(200);
        let report = verify_export(text.as_bytes(), &[], None, VerifyOptions::default()).unwrap();
        assert_eq!(report.entries, 200);
        assert!(report.redacted > 0);
        check(text.as_bytes(), &[]);
        let no_newline = text.trim_end();
        check(no_newline.as_bytes(), &[]);
    }

    /// A line at a time from a slice, then an error.
    struct FailingAfter<'a> {
        data: &'a [u8],
        ok: usize,
    }

    impl std::io::Read for FailingAfter<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.ok == 0 {
                return Err(std::io::Error::other("disk on fire"));
            }
            let n = buf.len().min(self.ok).min(self.data.len()).min(97);
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            self.ok -= n;
            Ok(n)
        }
    }

    #[test]
    fn read_errors_are_reported_after_the_lines_before_them() {
        let text = export(60);
        for ok in [0, 100, text.len() / 3, text.len() / 2 + 7] {
            let reader = || {
                std::io::BufReader::with_capacity(
                    64,
                    FailingAfter {
                        data: text.as_bytes(),
                        ok,
                    },
                )
            };
            let want = reference(reader(), &[], None);
            assert!(
                want.as_ref()
                    .is_err_and(|f| f.reason.contains("disk on fire"))
            );
            for tuning in tunings() {
                assert_eq!(
                    verify_export_with(reader(), &[], None, VerifyOptions::default(), tuning),
                    want
                );
            }
        }
        // An earlier failure comes first.
        let tampered = text.replacen("svc:crm-1", "svc:crm-2", 1);
        let reader = std::io::BufReader::new(FailingAfter {
            data: tampered.as_bytes(),
            ok: tampered.len() - 10,
        });
        let f = verify_export(reader, &[], None, VerifyOptions::default()).unwrap_err();
        assert!(f.reason.contains("leaf hash does not match body"), "{f}");
    }

    #[test]
    fn over_long_lines_are_refused_like_the_line_reader_does() {
        let text = export(30);
        let longest = text.lines().map(str::len).max().unwrap();
        for max_line in [200, longest - 1, longest, longest + 1, 3 * longest] {
            let mut long = text.replacen("plain", &"x".repeat(2 * longest), 1);
            for data in [text.as_bytes().to_vec(), long.clone().into_bytes(), {
                // Not UTF-8 just inside and just outside the limit.
                let at = long.find(&"x".repeat(100)).unwrap();
                long.replace_range(at..at + 1, "é");
                let mut bytes = long.into_bytes();
                bytes[at + 1] = b'x';
                bytes
            }] {
                let want = reference_with(&data[..], &[], None, VerifyOptions::default(), max_line);
                for job_bytes in [1, 300, 4096] {
                    let tuning = Tuning {
                        threads: Some(2),
                        job_bytes,
                        max_line,
                    };
                    let got =
                        verify_export_with(&data[..], &[], None, VerifyOptions::default(), tuning);
                    assert_eq!(got, want, "{tuning:?}");
                }
                long = text.replacen("plain", &"x".repeat(2 * longest), 1);
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Tamper {
        Flip { at: usize, byte: u8 },
        Insert { at: usize, text: &'static str },
        Delete { at: usize, len: usize },
        SwapLines { a: usize, b: usize },
        DropLine(usize),
        RepeatLine(usize),
        Truncate(usize),
    }

    fn tamper() -> impl Strategy<Value = Tamper> {
        let at = any::<prop::sample::Index>();
        prop_oneof![
            (at.clone(), any::<u8>()).prop_map(|(i, byte)| Tamper::Flip {
                at: i.index(usize::MAX),
                byte
            }),
            (
                at.clone(),
                prop::sample::select(vec![" ", "\\n", "\\u0041", "\n", "\u{e9}", "\u{ff}", "1"])
            )
                .prop_map(|(i, text)| Tamper::Insert {
                    at: i.index(usize::MAX),
                    text
                }),
            (at.clone(), 1usize..4).prop_map(|(i, len)| Tamper::Delete {
                at: i.index(usize::MAX),
                len
            }),
            (at.clone(), at.clone()).prop_map(|(a, b)| Tamper::SwapLines {
                a: a.index(usize::MAX),
                b: b.index(usize::MAX)
            }),
            at.clone()
                .prop_map(|i| Tamper::DropLine(i.index(usize::MAX))),
            at.clone()
                .prop_map(|i| Tamper::RepeatLine(i.index(usize::MAX))),
            at.prop_map(|i| Tamper::Truncate(i.index(usize::MAX))),
        ]
    }

    /// Applies `t` to the lines after the header (which stays intact).
    fn apply(text: &str, t: &Tamper) -> Vec<u8> {
        let header_end = text.find('\n').unwrap() + 1;
        let (header, body) = text.as_bytes().split_at(header_end);
        let mut body = body.to_vec();
        let mut lines: Vec<Vec<u8>> = body
            .split_inclusive(|&b| b == b'\n')
            .map(<[u8]>::to_vec)
            .collect();
        let n = lines.len();
        match *t {
            Tamper::Flip { at, byte } => {
                let i = at % body.len();
                body[i] = byte;
            }
            Tamper::Insert { at, text } => {
                let i = at % body.len();
                body.splice(i..i, text.bytes());
            }
            Tamper::Delete { at, len } => {
                let i = at % body.len();
                body.drain(i..(i + len).min(body.len()));
            }
            Tamper::SwapLines { a, b } => {
                lines.swap(a % n, b % n);
                body = lines.concat();
            }
            Tamper::DropLine(i) => {
                lines.remove(i % n);
                body = lines.concat();
            }
            Tamper::RepeatLine(i) => {
                let l = lines[i % n].clone();
                lines.insert(i % n, l);
                body = lines.concat();
            }
            Tamper::Truncate(at) => body.truncate(at % body.len()),
        }
        [header, &body[..]].concat()
    }

    /// Whether the lines after the header of `tampered` say what those of `text` say: every line
    /// reads as an export line, the entries are the same in the same order, and each checkpoint
    /// is one of the original's (dropped, repeated or moved). Any other change must fail.
    fn same_meaning(text: &str, tampered: &[u8]) -> bool {
        fn read(bytes: &[u8]) -> Option<(Vec<ExportLine>, Vec<ExportLine>)> {
            let start = bytes.iter().position(|&b| b == b'\n')? + 1;
            let (mut entries, mut checkpoints) = (Vec::new(), Vec::new());
            for line in bytes[start..].split_inclusive(|&b| b == b'\n') {
                match parse_line(std::str::from_utf8(line).ok()?).ok()? {
                    e @ ExportLine::Entry { .. } => entries.push(e),
                    c @ ExportLine::Checkpoint { .. } => checkpoints.push(c),
                    ExportLine::Header { .. } => return None,
                }
            }
            Some((entries, checkpoints))
        }
        match (read(text.as_bytes()), read(tampered)) {
            (Some((entries, checkpoints)), Some((kept, notes))) => {
                entries == kept && notes.iter().all(|n| checkpoints.contains(n))
            }
            _ => false,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Whatever is done to the lines, the batched, parallel verification reports exactly
        /// what the line-by-line verification reports, and unless the change leaves what the
        /// lines say intact, that is a failure.
        #[test]
        fn tampered_exports_fail_exactly_as_line_by_line(t in tamper()) {
            static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
            let text = TEXT.get_or_init(|| export(90));
            let tampered = apply(text, &t);
            let want = reference(&tampered[..], &[], None);
            if !same_meaning(text, &tampered) {
                prop_assert!(want.is_err(), "{:?} passed: {:?}", t, want);
            }
            for tuning in tunings() {
                let got = verify_export_with(&tampered[..], &[], None, VerifyOptions::default(), tuning);
                prop_assert_eq!(&got, &want, "{:?}", tuning);
            }
        }
    }

    #[test]
    fn changes_that_keep_the_meaning_are_told_apart() {
        let text = export(30);
        assert!(same_meaning(&text, text.as_bytes()));
        assert!(same_meaning(&text, text.trim_end().as_bytes()));
        let spaced = text.replacen("\"data\":{", "\"data\": {", 1);
        assert!(same_meaning(&text, spaced.as_bytes()));
        assert!(verify_export(spaced.as_bytes(), &[], None, VerifyOptions::default()).is_ok());
        let tampered = text.replacen("plain", "plaim", 1);
        assert!(!same_meaning(&text, tampered.as_bytes()));
        assert!(!same_meaning(&text, format!("{text}\n").as_bytes()));
    }

    /// `text` with `from` replaced by `to` once in the line starting with `prefix`, and that
    /// line's number.
    fn edit_line(text: &str, prefix: &str, from: &str, to: &str) -> (String, usize) {
        let mut at = 0;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            if line.starts_with(prefix) {
                assert!(line.contains(from), "{line} has no {from:?}");
                let edited = line.replacen(from, to, 1);
                let out = format!("{}{edited}{}", &text[..at], &text[at + line.len()..]);
                return (out, i + 1);
            }
            at += line.len();
        }
        panic!("no line starts with {prefix:?}")
    }

    /// The failure names the line and the repeated name, and every reading agrees.
    fn expect_duplicate(text: &str, line: usize, name: &str, at: &str) {
        let f = verify_export(text.as_bytes(), &[], None, VerifyOptions::default()).unwrap_err();
        assert_eq!((f.seq, f.checkpoint_size), (None, None), "{f}");
        let want = format!("line {line}: duplicate member name {name:?}");
        assert!(
            f.reason.starts_with(&want),
            "{f} should start with {want:?}"
        );
        assert!(
            f.reason.contains(&format!("(at {at})")),
            "{f} should say where"
        );
        check(text.as_bytes(), &[]);
    }

    #[test]
    fn duplicate_member_names_are_refused_naming_the_line() {
        let text = export(30);
        let entry5 = "{\"type\":\"entry\",\"seq\":5,";
        // In the payload data: `serde_json` keeps the last value, which is the committed one, so
        // only the check of names tells this line from the real one.
        let (forged, n) = edit_line(
            &text,
            entry5,
            "\"data\":{",
            "\"data\":{\"note\":\"forged\",",
        );
        assert!(forged.contains("\"note\":\"forged\""));
        expect_duplicate(&forged, n, "note", "$.payload.data.note");
        let (nested, n) = edit_line(&text, entry5, "\"nested\":{", "\"nested\":{\"empty\":[1],");
        expect_duplicate(&nested, n, "empty", "$.payload.data.nested.empty");
        // In the payload, the entry object and the entry's body.
        let salt = "\"payload\":{\"salt\":";
        let (payload, n) = edit_line(&text, entry5, salt, &format!("{salt}\"00\",\"salt\":"));
        expect_duplicate(&payload, n, "salt", "$.payload.salt");
        let (object, n) = edit_line(&text, entry5, "\"seq\":5,", "\"seq\":5,\"seq\":5,");
        expect_duplicate(&object, n, "seq", "$.seq");
        let (body, n) = edit_line(
            &text,
            entry5,
            "{\\\"actor\\\":",
            "{\\\"at\\\":1,\\\"actor\\\":",
        );
        expect_duplicate(&body, n, "at", "$.at");
        let f = verify_export(body.as_bytes(), &[], None, VerifyOptions::default()).unwrap_err();
        assert!(f.reason.contains("in the entry's body"), "{f}");
        // In a checkpoint line, and in the header.
        let (cp, n) = edit_line(
            &text,
            "{\"type\":\"checkpoint\"",
            "\"note\":",
            "\"note\":\"x\",\"note\":",
        );
        expect_duplicate(&cp, n, "note", "$.note");
        let (header, n) = edit_line(
            &text,
            "{\"type\":\"header\"",
            "\"entries\":",
            "\"entries\":0,\"entries\":",
        );
        assert_eq!(n, 1);
        let f = verify_export(header.as_bytes(), &[], None, VerifyOptions::default()).unwrap_err();
        assert!(
            f.reason
                .starts_with("line 1: duplicate member name \"entries\" (at $.entries)"),
            "{f}"
        );
    }

    #[test]
    fn members_other_than_the_formats_are_refused() {
        let text = export(30);
        let entry5 = "{\"type\":\"entry\",\"seq\":5,";
        // An open payload that also claims to be redacted.
        let (both, n) = edit_line(
            &text,
            entry5,
            "\"payload\":{",
            "\"payload\":{\"redacted_by\":9,",
        );
        let f = verify_export(both.as_bytes(), &[], None, VerifyOptions::default()).unwrap_err();
        assert!(
            f.reason
                .starts_with(&format!("line {n}: not a valid export line")),
            "{f}"
        );
        check(both.as_bytes(), &[]);
        for (prefix, at) in [
            (entry5, "\"seq\":5,"),
            ("{\"type\":\"checkpoint\"", "\"note\":"),
            ("{\"type\":\"header\"", "\"entries\":"),
        ] {
            let (extra, n) = edit_line(&text, prefix, at, &format!("\"redacted\":true,{at}"));
            let f =
                verify_export(extra.as_bytes(), &[], None, VerifyOptions::default()).unwrap_err();
            assert!(f.reason.starts_with(&format!("line {n}: ")), "{f}");
            assert!(f.reason.contains("unknown field `redacted`"), "{f}");
        }
    }

    #[test]
    fn pins_and_render_agree_with_the_reference() {
        let mut b = LedgerBuilder::new(ORIGIN, signer());
        let mut pins = Vec::new();
        for i in 0..80 {
            b.append(entry(i)).unwrap();
            if i % 25 == 3 {
                pins.push(b.checkpoint_note().unwrap());
            }
        }
        let text = b.export().unwrap();
        check(text.as_bytes(), &pins);
        // Checkpoints given ahead of their entries, and a header rendered by the builder.
        let lines = b.lines().to_vec();
        let mut moved = lines.clone();
        let cp = moved.pop().unwrap();
        moved.insert(3, cp);
        let note = b.checkpoint_note().unwrap();
        let text = render(&b.header(note), &moved);
        check(text.as_bytes(), &pins);
    }
}
