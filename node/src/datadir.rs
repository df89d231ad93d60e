//! The ledger's files in `--data-dir`: checkpoints and the logs after them.
//!
//! - `ledger.log`: the log from genesis, until the first checkpoint.
//! - `checkpoint-<seq>.ckpt`: the engine's state after `seq` finalizations
//!   ([`Engine::checkpoint_image`]), written whole or not at all.
//! - `ledger-<seq>.log`: the records after that state. It is started (the
//!   log rotated) between two batches, in the same step the image is taken,
//!   so the checkpoint and this log replay to the state of the whole history.
//!
//! The image is written off the replica's task; only once it is durable are
//! the older checkpoints and logs deleted. A crash at any point leaves either
//! the older checkpoint with every log after it, or the new one with its log.
//! On start, the newest checkpoint that reads back whole and adds up is
//! restored and the logs from its `seq` on are replayed; a torn or corrupt
//! one falls back to the one before.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use tracing::{info, warn};

use crate::finality::{Engine, Record, Replay, ReplayError};
use crate::store::{self, Store, StoreError};

/// Finalizations between two checkpoints, by default (with a finality window).
pub const CHECKPOINT_EVERY: u64 = 5_000;

const GENESIS_LOG: &str = "ledger.log";

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot read data dir {path}: {source}")]
    List {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {source}; the node cannot rebuild its ledger from it: restore the file from a backup ({UNSAFE_RESET})")]
    Replay { path: PathBuf, source: ReplayError },
    #[error("data dir {dir}: {what}: restore it from a backup ({UNSAFE_RESET})")]
    Gap { dir: PathBuf, what: String },
}

const UNSAFE_RESET: &str =
    "starting from an empty data dir instead makes a validator forget what it \
approved, and it may then approve a conflicting transaction: safe only if at most f validators do \
so; catch-up refills its ledger";

/// What [`open`] restored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Opened {
    /// The checkpoint restored (its finalized count), if any.
    pub checkpoint: Option<u64>,
    /// Logs replayed after it, and their records.
    pub logs: usize,
    pub records: usize,
    /// Bytes dropped from the last log's tail (a torn write).
    pub truncated_bytes: u64,
    /// Checkpoints skipped because they did not read back whole, with why.
    pub skipped: Vec<String>,
    /// The newest of them (its log was started before it was written).
    pub newest_skipped: Option<u64>,
    /// The `seq` of the log appended to (0: `ledger.log`).
    pub active: u64,
}

/// The files of the data dir, by kind, sorted by seq.
#[derive(Debug, Default)]
struct Files {
    checkpoints: Vec<u64>,
    logs: Vec<u64>,
}

fn checkpoint_name(seq: u64) -> String {
    format!("checkpoint-{seq:020}.ckpt")
}

fn log_name(seq: u64) -> String {
    match seq {
        0 => GENESIS_LOG.to_owned(),
        s => format!("ledger-{s:020}.log"),
    }
}

/// Lists the ledger's files, deleting temporary ones (a checkpoint whose
/// write a crash cut short).
fn list(dir: &Path) -> Result<Files, DataDirError> {
    let list_err = |source| DataDirError::List {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(list_err)?;
    let mut files = Files::default();
    for entry in std::fs::read_dir(dir).map_err(list_err)? {
        let name = entry.map_err(list_err)?.file_name();
        let name = name.to_string_lossy();
        let seq = |prefix: &str, suffix: &str| {
            name.strip_prefix(prefix)?
                .strip_suffix(suffix)
                .filter(|d| d.len() == 20)?
                .parse::<u64>()
                .ok()
        };
        if name.ends_with(".ckpt.tmp") {
            let _ = std::fs::remove_file(dir.join(&*name));
        } else if name == GENESIS_LOG {
            files.logs.push(0);
        } else if let Some(s) = seq("checkpoint-", ".ckpt") {
            files.checkpoints.push(s);
        } else if let Some(s) = seq("ledger-", ".log").filter(|s| *s > 0) {
            files.logs.push(s);
        }
    }
    files.checkpoints.sort_unstable();
    files.logs.sort_unstable();
    Ok(files)
}

/// Rebuilds the engine `fresh` makes from the data dir: the newest whole
/// checkpoint, then every log after it; returns the log to append to.
pub fn open(
    dir: &Path,
    fresh: impl Fn() -> Engine,
    now: u64,
) -> Result<(Engine, Store<Record>, Opened), DataDirError> {
    let files = list(dir)?;
    let mut opened = Opened::default();
    let mut chosen = None;
    for &seq in files.checkpoints.iter().rev() {
        match restore(dir, seq, &fresh, now) {
            Ok(state) => {
                chosen = Some(state);
                break;
            }
            Err(why) => {
                warn!(checkpoint = seq, error = %why, "skipping a checkpoint that does not restore");
                opened.skipped.push(why);
                opened.newest_skipped = opened.newest_skipped.max(Some(seq));
            }
        }
    }
    let (mut engine, mut replay, base) = match chosen {
        Some((engine, replay, seq)) => (engine, replay, seq),
        None => (fresh(), Replay::new(now), 0),
    };
    opened.checkpoint = replay.restored();
    let mut logs: Vec<u64> = files.logs.into_iter().filter(|s| *s >= base).collect();
    if let [.., _, last] = logs[..] {
        if unfinished(dir, last, &files.checkpoints) {
            logs.pop();
        }
    }
    let gap = |what: String| DataDirError::Gap {
        dir: dir.to_path_buf(),
        what,
    };
    if let Some(what) = missing(&opened, base, &logs) {
        return Err(gap(what));
    }
    let active = logs.last().copied().unwrap_or(base);
    for (k, &seq) in logs.iter().enumerate() {
        // A log is started (rotated) when the count is its name.
        if engine.finalized_count() as u64 != seq {
            let what = format!(
                "{} starts at {seq} finalizations, but what comes before it ends at {}: a log \
                 between them is missing or cut short",
                log_name(seq),
                engine.finalized_count()
            );
            return Err(gap(what));
        }
        if k + 1 == logs.len() {
            break;
        }
        let path = dir.join(log_name(seq));
        let mut failed = None;
        let (_, whole) =
            store::read_file(&path, |r| feed(&mut engine, &mut replay, r, &mut failed))?;
        if let Some(source) = failed {
            return Err(DataDirError::Replay { path, source });
        }
        // Only the last log can be torn by a crash: the others were synced
        // before the next was started.
        if !whole {
            let source =
                ReplayError("a corrupt record before the end of a log that is not the last".into());
            return Err(DataDirError::Replay { path, source });
        }
    }
    let mut failed = None;
    let (store, recovery) = Store::open_each(dir, &log_name(active), |r| {
        feed(&mut engine, &mut replay, r, &mut failed)
    })?;
    let path = dir.join(log_name(active));
    if let Some(source) = failed {
        return Err(DataDirError::Replay { path, source });
    }
    opened.logs = logs.len().max(1);
    opened.records = replay.records();
    opened.truncated_bytes = recovery.truncated_bytes;
    opened.active = active;
    engine
        .replay_finish(replay)
        .map_err(|source| DataDirError::Replay { path, source })?;
    Ok((engine, store, opened))
}

/// Whether the last log, at `seq`, is empty and has no checkpoint: one
/// started for a checkpoint that was never written (a crash in between; a
/// snapshot installed writes its checkpoint after starting its log, so its
/// log may not follow the one before). Nothing was written to it, so it is
/// removed and the log before it stays the one appended to.
fn unfinished(dir: &Path, seq: u64, checkpoints: &[u64]) -> bool {
    let path = dir.join(log_name(seq));
    let empty = std::fs::metadata(&path).is_ok_and(|m| m.len() == 0);
    if !empty || checkpoints.contains(&seq) || std::fs::remove_file(&path).is_err() {
        return false;
    }
    warn!(log = %path.display(), "removed an empty log whose checkpoint was never written");
    true
}

/// The checkpoints that did not restore, for an error message.
fn unread(skipped: &[String]) -> String {
    match skipped {
        [] => String::new(),
        s => format!(" (checkpoints that did not restore: {})", s.join("; ")),
    }
}

/// What is missing for the logs to follow the checkpoint restored (or
/// genesis) without a gap at the start, if anything.
fn missing(opened: &Opened, base: u64, logs: &[u64]) -> Option<String> {
    let unread = unread(&opened.skipped);
    // A checkpoint is written only after its log was started.
    if let Some(s) = opened.newest_skipped.filter(|s| !logs.contains(s)) {
        return Some(format!(
            "{} is missing, and the checkpoint written with it does not restore{unread}",
            log_name(s)
        ));
    }
    match (opened.checkpoint, logs.first()) {
        (Some(_), first) if first != Some(&base) => {
            Some(format!("{} is missing{unread}", log_name(base)))
        }
        (None, Some(first)) if *first > 0 => Some(format!(
            "its oldest log starts after {first} finalizations, and no checkpoint restores them{unread}"
        )),
        _ => None,
    }
}

fn feed(engine: &mut Engine, replay: &mut Replay, r: Record, failed: &mut Option<ReplayError>) {
    if failed.is_none() {
        if let Err(e) = engine.replay_record(replay, r) {
            *failed = Some(e);
        }
    }
}

/// A fresh engine with checkpoint `seq` restored, or why it was not.
fn restore(
    dir: &Path,
    seq: u64,
    fresh: &dyn Fn() -> Engine,
    now: u64,
) -> Result<(Engine, Replay, u64), String> {
    let path = dir.join(checkpoint_name(seq));
    let mut engine = fresh();
    let mut replay = Replay::new(now);
    let mut failed = None;
    let read = store::read_file(&path, |r| feed(&mut engine, &mut replay, r, &mut failed));
    let why = match (read, failed, replay.restored()) {
        (Err(e), _, _) => e.to_string(),
        (_, Some(e), _) => format!("{}: {e}", path.display()),
        (Ok(_), None, Some(s)) if s == seq => return Ok((engine, replay, seq)),
        (Ok(_), None, Some(s)) => format!("{}: holds the state at {s}", path.display()),
        (Ok(_), None, None) => format!("{}: ends before its End record (torn)", path.display()),
    };
    Err(why)
}

/// Caps glibc's malloc arenas at two: each thread of tokio's blocking pool
/// (the checkpoint writer, the store's appends) would otherwise get one of
/// its own, and memory freed in it is seldom returned to the system.
pub fn few_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets a malloc parameter; called before any
    // thread of the node starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// How much less of the CPU a checkpoint's writer asks for than the node's
/// other threads (a nice value): writing and reading back a window of
/// certificates is background work; under load it yields to the replica
/// and the network (the checkpoint comes later, the log's tail is longer)
/// instead of the payments' latency paying for it.
const BACKGROUND_NICE: libc::c_int = 10;

/// Runs `work` on a thread of its own at [`BACKGROUND_NICE`] and waits for
/// it (a thread's nice value cannot be lowered back without privileges, so
/// not on a pooled thread); here if no thread can be started.
fn in_background<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    let slot = std::sync::Mutex::new(Some(work));
    let take = || slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn_scoped(scope, || {
                lower_priority(BACKGROUND_NICE);
                take().map(|work| work())
            });
        let done = match spawned {
            Ok(thread) => thread
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            Err(e) => {
                warn!(error = %e, "cannot start a thread for the checkpoint; writing it here");
                None
            }
        };
        done.or_else(|| take().map(|work| work()))
            .expect("the work runs on one of the two paths")
    })
}

/// Lowers the calling thread's priority to `nice` (Linux: a nice value is
/// per thread), never raises it (a node run at a lower priority still, by
/// a privileged user, keeps it); a failure only leaves it where it was.
fn lower_priority(nice: libc::c_int) {
    #[cfg(target_os = "linux")]
    // SAFETY: getpriority reads, and setpriority changes, the scheduling
    // weight of this thread only.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        if libc::getpriority(libc::PRIO_PROCESS, tid) < nice {
            libc::setpriority(libc::PRIO_PROCESS, tid, nice);
        }
    }
}

/// Returns the pages malloc holds free to the system (after a checkpoint's
/// image, or a replay, freed what they allocated).
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only gives free pages back; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// What `/status` says of the checkpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointReport {
    /// The finalized count of the checkpoint this node started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<u64>,
    /// The finalized count of the newest checkpoint on disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest: Option<u64>,
    /// Checkpoints written since the node started.
    pub written: u64,
    /// Checkpoint writes that failed (the older files were kept).
    pub failed: u64,
    /// The finalized count of the last snapshot installed from a peer
    /// (state sync) since the node started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced: Option<u64>,
}

/// The checkpoints as they are written (shared with `/status`).
#[derive(Debug, Default)]
pub struct Progress {
    report: std::sync::Mutex<CheckpointReport>,
}

impl Progress {
    pub fn report(&self) -> CheckpointReport {
        *self.report.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut CheckpointReport)) {
        f(&mut self.report.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The checkpoint the node started from.
    pub fn restored(&self, seq: Option<u64>) {
        self.update(|r| {
            r.restored_from = seq;
            r.newest = seq;
        });
    }
}

/// Makes an engine to read a checkpoint back into (with metrics of its own).
pub type Fresh = Arc<dyn Fn() -> Engine + Send + Sync>;

/// Takes a checkpoint every so many finalizations (with a finality window)
/// and writes it off the replica's task.
pub struct Checkpointer {
    dir: PathBuf,
    every: u64,
    active: u64,
    /// The count at which the next checkpoint is due.
    due: u64,
    writing: Option<tokio::task::JoinHandle<()>>,
    progress: Arc<Progress>,
    fresh: Fresh,
    /// The claim of the checkpoint being written, made once it is.
    claim: Option<crate::finality::Claim>,
}

impl Checkpointer {
    /// `active`: the seq of the log appended to; `every` 0: never; each
    /// checkpoint written is read back into an engine `fresh` makes before
    /// the files before it are deleted.
    pub fn new(dir: &Path, every: u64, active: u64, fresh: Fresh) -> Self {
        Checkpointer {
            dir: dir.to_path_buf(),
            every,
            active,
            due: active.saturating_add(every),
            writing: None,
            progress: Arc::default(),
            fresh,
            claim: None,
        }
    }

    /// The first checkpoint comes `phase` (modulo `every`) finalizations
    /// early, the next ones `every` apart from it. Nodes finalize in step:
    /// with the same schedule all of a host's nodes would write (and read
    /// back) their checkpoints at once, and that burst of work set the
    /// payments' p99 latency. Claims are attested at any count, so nodes'
    /// checkpoints need not line up.
    pub fn with_phase(mut self, phase: u64) -> Self {
        if self.every > 0 {
            self.due = self.active.saturating_add(self.every - phase % self.every);
        }
        self
    }

    /// Before each batch: the checkpoint written since is claimed (peers
    /// syncing from us are offered it; a claim is never offered before its
    /// checkpoint is on disk).
    /// True if a claim was made (announce it: [`Engine::announce_claim`]).
    pub fn poll(&mut self, engine: &mut Engine) -> bool {
        if self.writing.as_ref().is_some_and(|w| !w.is_finished()) {
            return false;
        }
        let Some(claim) = self.claim.take() else {
            return false;
        };
        let written = self.progress.report().newest == Some(claim.seq);
        if written {
            engine.propose(claim);
        }
        written
    }

    /// What it has written, as `/status` shows it.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// After a batch is durable (and before the next changes the engine):
    /// if it is time, rotates the log and starts writing the image.
    pub fn after_batch(&mut self, store: &mut Store<Record>, engine: &Engine) {
        let count = engine.finalized_count() as u64;
        if self.every == 0 || engine.window() == 0 || count < self.due {
            return;
        }
        if self.writing.as_ref().is_some_and(|w| !w.is_finished()) {
            return;
        }
        let image = engine.checkpoint_image();
        if let Err(e) = store.rotate(&self.dir, &log_name(count)) {
            warn!(error = %e, "cannot start a new log; no checkpoint this time");
            return;
        }
        self.claim = engine.claim();
        self.active = count;
        self.due = count.saturating_add(self.every);
        let (dir, progress, fresh) = (self.dir.clone(), self.progress.clone(), self.fresh.clone());
        self.writing = Some(tokio::task::spawn_blocking(move || {
            let written = in_background(move || {
                let written = write_checkpoint(&dir, count, &image, Some(&*fresh));
                drop(image);
                written
            });
            release_free_memory();
            progress.update(|r| match written {
                true => {
                    r.written += 1;
                    r.newest = Some(count);
                }
                false => r.failed += 1,
            });
        }));
    }

    /// After a snapshot was installed (state sync, at `synced`): the
    /// engine's state, `image` at `count`, written as a checkpoint at once,
    /// with a new log after it, before anything else leaves. An error means
    /// the installed state is not durable: the replica must stop (a restart
    /// finds the new log without its checkpoint, and says so).
    pub async fn install(
        &mut self,
        store: &mut Store<Record>,
        image: Vec<Record>,
        count: u64,
        synced: u64,
    ) -> Result<(), String> {
        self.finish().await;
        store
            .rotate(&self.dir, &log_name(count))
            .map_err(|e| format!("cannot start a log after the snapshot: {e}"))?;
        self.active = count;
        self.due = count.saturating_add(self.every);
        let (dir, fresh) = (self.dir.clone(), self.fresh.clone());
        let written = tokio::task::spawn_blocking(move || {
            write_checkpoint(&dir, count, &image, Some(&*fresh))
        })
        .await
        .unwrap_or(false);
        if !written {
            return Err(format!(
                "cannot write the snapshot installed at {synced} as a checkpoint"
            ));
        }
        release_free_memory();
        self.progress.update(|r| {
            r.written += 1;
            r.newest = Some(count);
            r.synced = Some(synced);
        });
        Ok(())
    }

    /// The data dir it writes in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Waits for a checkpoint being written (on shutdown, and in tests).
    pub async fn finish(&mut self) {
        if let Some(w) = self.writing.take() {
            let _ = w.await;
        }
    }
}

/// Part `index` of the checkpoint at `seq` in `dir`, as a peer syncing from
/// it asked (`None` if that checkpoint or part is not here).
pub fn snapshot_part(dir: &Path, seq: u64, index: u32) -> Option<crate::finality::LedgerMessage> {
    let budget = crate::finality::CATCHUP_REPLY_BYTES;
    let mut part = crate::finality::SnapshotPart::new(seq, index, budget);
    store::read_file(&dir.join(checkpoint_name(seq)), |r| part.push(r)).ok()?;
    part.finish()
}

/// Writes the checkpoint at `seq` (and reads it back into an engine
/// `verify` makes, if given), then deletes what it makes redundant; false if
/// it could not be written or read back (the older files are kept).
pub fn write_checkpoint(
    dir: &Path,
    seq: u64,
    image: &[Record],
    verify: Option<&dyn Fn() -> Engine>,
) -> bool {
    let started = std::time::Instant::now();
    if let Err(e) = store::write_file(dir, &checkpoint_name(seq), image) {
        warn!(error = %e, seq, "cannot write a checkpoint; the logs before it are kept");
        return false;
    }
    if let Some(Err(why)) = verify.map(|fresh| restore(dir, seq, fresh, 0)) {
        warn!(error = %why, seq, "a checkpoint written does not read back; it is removed, the logs before it are kept");
        let _ = std::fs::remove_file(dir.join(checkpoint_name(seq)));
        return false;
    }
    let mut removed = 0;
    if let Ok(files) = list(dir) {
        let old_checkpoints = files.checkpoints.iter().filter(|s| **s < seq);
        let old_logs = files.logs.iter().filter(|s| **s < seq);
        let old =
            (old_checkpoints.map(|s| checkpoint_name(*s))).chain(old_logs.map(|s| log_name(*s)));
        for name in old {
            if std::fs::remove_file(dir.join(name)).is_ok() {
                removed += 1;
            }
        }
    }
    info!(
        seq,
        records = image.len(),
        ms = started.elapsed().as_millis() as u64,
        removed,
        "checkpoint written"
    );
    true
}

#[cfg(test)]
mod tests;
