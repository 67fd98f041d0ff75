//! Background jobs that fetch an image from a URL (`http(s)://`, `oras://`) into the store.
//!
//! `POST /images` records a job and returns; one runner thread (started by `web::run`) works
//! through them in order, so fetches never tie up request workers and never pile up in
//! parallel. Job state lives in memory (`GET /images/jobs`); every outcome is also an audit
//! event. Shutdown aborts a running fetch and removes its temporary file. A running fetch also
//! leaves a note in `<state_dir>/fetching/`, removed when it ends: a note found at start is a
//! fetch a crash or power loss cut short, and is recorded as failed then.

use super::context::{event, AppContext};
use super::files;
use super::handlers::images::{format_id, probe};
use crate::db::{ImageKind, ImageRow};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for the runner.
    Queued,
    /// Downloading.
    Running,
    /// Stored.
    Done,
    /// Gave up; see `error`.
    Failed,
}

/// One fetch, as `GET /images/jobs` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// Job id.
    pub id: u64,
    /// The URL fetched.
    pub src: String,
    /// The name it is stored under.
    pub name: String,
    /// Where it is.
    pub status: JobStatus,
    /// Bytes received so far.
    pub bytes_done: u64,
    /// Total bytes, when the source knows.
    pub bytes_total: Option<u64>,
    /// Why it failed.
    pub error: Option<String>,
    /// The new entry's ref once stored.
    #[serde(rename = "ref")]
    pub image_ref: Option<String>,
    /// When it was requested.
    pub created_at: String,
}

/// The job table and the queue to the runner.
pub struct Jobs {
    table: Mutex<Vec<Job>>,
    tx: Mutex<Sender<u64>>,
    rx: Mutex<Option<Receiver<u64>>>,
}

impl Default for Jobs {
    fn default() -> Jobs {
        let (tx, rx) = channel();
        Jobs { table: Mutex::new(Vec::new()), tx: Mutex::new(tx), rx: Mutex::new(Some(rx)) }
    }
}

/// Finished jobs kept for display.
const KEEP_FINISHED: usize = 50;

impl Jobs {
    /// Records a job and queues it; returns it as queued.
    pub fn enqueue(&self, src: &str, name: &str) -> Job {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let id = table.iter().map(|j| j.id).max().unwrap_or(0) + 1;
        let job = Job {
            id,
            src: src.to_string(),
            name: name.to_string(),
            status: JobStatus::Queued,
            bytes_done: 0,
            bytes_total: None,
            error: None,
            image_ref: None,
            created_at: crate::db::now(),
        };
        table.push(job.clone());
        let finished =
            table.iter().filter(|j| matches!(j.status, JobStatus::Done | JobStatus::Failed)).count();
        if finished > KEEP_FINISHED {
            if let Some(pos) =
                table.iter().position(|j| matches!(j.status, JobStatus::Done | JobStatus::Failed))
            {
                table.remove(pos);
            }
        }
        let _ = self.tx.lock().unwrap_or_else(|p| p.into_inner()).send(id);
        job
    }

    /// Every job, oldest first.
    pub fn list(&self) -> Vec<Job> {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether a queued or running job already targets `name`.
    pub fn pending_name(&self, name: &str) -> bool {
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table.iter().any(|j| j.name == name && matches!(j.status, JobStatus::Queued | JobStatus::Running))
    }

    /// Lists a job that failed before this process could run it (a fetch cut short by a crash).
    fn record_failed(&self, src: &str, name: &str, error: &str) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let id = table.iter().map(|j| j.id).max().unwrap_or(0) + 1;
        table.push(Job {
            id,
            src: src.to_string(),
            name: name.to_string(),
            status: JobStatus::Failed,
            bytes_done: 0,
            bytes_total: None,
            error: Some(error.to_string()),
            image_ref: None,
            created_at: crate::db::now(),
        });
    }

    /// The job `id` if it failed (only a failed job can be retried or dismissed).
    pub fn failed(&self, id: u64) -> Option<Job> {
        self.get(id).filter(|j| j.status == JobStatus::Failed)
    }

    /// Removes the failed job `id` from the list; whether it was there.
    pub fn dismiss(&self, id: u64) -> bool {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let before = table.len();
        table.retain(|j| !(j.id == id && j.status == JobStatus::Failed));
        table.len() < before
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut Job)) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(job) = table.iter_mut().find(|j| j.id == id) {
            f(job);
        }
    }

    fn get(&self, id: u64) -> Option<Job> {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).iter().find(|j| j.id == id).cloned()
    }
}

/// The directory of notes left by running fetches.
fn notes_dir(ctx: &AppContext) -> PathBuf {
    ctx.config.paths.state_dir.join("fetching")
}

/// What a note holds: enough to say which fetch was cut short.
#[derive(Serialize, serde::Deserialize)]
struct Note {
    src: String,
    name: String,
}

/// Records every fetch that a crash cut short (a note is left) as failed, and removes the notes.
fn report_interrupted(ctx: &AppContext) {
    let dir = notes_dir(ctx);
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let note: Option<Note> = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(note) = note {
            let error = "interrupted: bty-web stopped during the fetch; add the image again";
            ctx.jobs.record_failed(&note.src, &note.name, error);
            fetch_failed(ctx, &note.src, &note.name, error);
        }
        if let Err(e) = std::fs::remove_file(&path) {
            crate::log_warn!("removing {}: {e}", path.display());
        }
    }
}

fn fetch_failed(ctx: &AppContext, src: &str, name: &str, error: &str) {
    // The reason in the summary: the events page and the dashboard show summaries, not details.
    let why: String = error.chars().take(300).collect();
    let mut e =
        event("image.fetch.failed", ("image", name), "system", format!("fetching {name} failed: {why}"));
    e.details = Some(serde_json::json!({ "src": src, "error": error }));
    ctx.audit(None, e);
}

/// Records fetches a crash cut short, then starts the runner thread; it ends when shutdown
/// begins.
pub fn start(ctx: Arc<AppContext>) -> Option<std::thread::JoinHandle<()>> {
    report_interrupted(&ctx);
    let rx = ctx.jobs.rx.lock().unwrap_or_else(|p| p.into_inner()).take()?;
    std::thread::Builder::new()
        .name("bty-web-jobs".into())
        .spawn(move || {
            while !ctx.shutting_down() {
                match rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(id) => run(&ctx, id),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        })
        .ok()
}

fn run(ctx: &AppContext, id: u64) {
    let Some(job) = ctx.jobs.get(id) else { return };
    ctx.jobs.update(id, |j| j.status = JobStatus::Running);
    let note = notes_dir(ctx).join(format!("job-{id}.json"));
    let body = serde_json::to_vec(&Note { src: job.src.clone(), name: job.name.clone() }).unwrap_or_default();
    if let Err(e) = std::fs::create_dir_all(notes_dir(ctx)).and_then(|()| std::fs::write(&note, body)) {
        crate::log_warn!("writing {}: {e} (a crash during this fetch would go unreported)", note.display());
    }
    let outcome = fetch(ctx, &job);
    let _ = std::fs::remove_file(&note);
    match outcome {
        Ok(row) => {
            ctx.jobs.update(id, |j| {
                j.status = JobStatus::Done;
                j.image_ref = Some(row.image_ref.clone());
            });
            let mut e =
                event("image.fetched", ("image", &row.image_ref), "system", format!("{} fetched", row.name));
            e.details = Some(
                serde_json::json!({ "src": job.src, "size_bytes": row.size_bytes, "sha256": row.sha256 }),
            );
            ctx.audit(None, e);
        }
        Err(msg) => {
            ctx.jobs.update(id, |j| {
                j.status = JobStatus::Failed;
                j.error = Some(msg.clone());
            });
            fetch_failed(ctx, &job.src, &job.name, &msg);
        }
    }
}

fn fetch(ctx: &AppContext, job: &Job) -> Result<ImageRow, String> {
    let image_ref = crate::catalog::image_ref(&job.src).map_err(|e| e.to_string())?;
    if ctx.db.image(&image_ref).map_err(|e| e.to_string())?.is_some() {
        return Err(format!("{} is already in the catalog", job.src));
    }
    let src = crate::source::open(&job.src).map_err(|e| e.to_string())?;
    let total = src.len();
    ctx.jobs.update(job.id, |j| j.bytes_total = total);
    let mut stream = src.open_stream(0).map_err(|e| e.to_string())?;
    let dir = &ctx.config.paths.images_dir;
    let progress = |n: u64| ctx.jobs.update(job.id, |j| j.bytes_done = n);
    let partial = files::receive_from(
        &mut stream,
        dir,
        &job.name,
        ctx.config.tuning.max_upload_bytes,
        &ctx.shutdown,
        &progress,
    )
    .map_err(|e| e.detail.as_str().map(str::to_string).unwrap_or_else(|| e.detail.to_string()))?;
    if let Some(want) = src.expected_sha256() {
        let want = crate::source::hex(&want);
        if want != partial.sha256 {
            return Err(format!(
                "digest mismatch: the registry promised sha256:{want}, got sha256:{}",
                partial.sha256
            ));
        }
    }
    let (format, vsize) =
        probe(partial.path(), &job.name).map_err(|e| format!("not a supported image: {e}"))?;
    let row = ImageRow {
        image_ref,
        name: job.name.clone(),
        kind: ImageKind::Stored,
        src: Some(job.src.clone()),
        sha256: Some(partial.sha256.clone()),
        format: Some(format_id(format)),
        size_bytes: Some(partial.size),
        virtual_size: vsize,
        arch: crate::catalog::arch_hint(&job.name).map(str::to_string),
        description: None,
        created_at: crate::db::now(),
    };
    let dest = dir.join(&job.name);
    if !partial.commit_new(&dest).map_err(|e| e.detail.to_string())? {
        return Err(format!("{:?} exists in the image store; delete it first", job.name));
    }
    // The store keeps one copy of any bytes, as an upload does (`insert_image` refuses bytes
    // stored already, naming the entry that holds them); the operator binds that entry.
    if let Err(e) = ctx.db.insert_image(&row) {
        let _ = std::fs::remove_file(&dest);
        return Err(format!("{e}; nothing was added"));
    }
    Ok(row)
}
