//! The server-driven cycle: inventory → plan → act → report.
//!
//! One call of [`run`] is one boot's worth of work, as upstream's `bty --mac` does it: post the
//! inventory (disks + hardware summary), fetch the plan, and dispatch on its mode. A flash
//! streams the image to the disk whose serial equals the plan's, checks the digest, posts
//! progress every second and `done`/`failed` with a precise reason. What happens next
//! (reboot, wizard, nothing) is returned as [`Next`]; the caller (PID 1 or the applet) does it,
//! so this module never reboots and never exits the process.

use super::client::{Client, PlanReply};
use super::console::{marker, Milestones, FLASH_COMPLETE, FLASH_STARTING};
use crate::disk::{Disk, Transport};
use crate::error::{Context, ErrorKind, Result};
use crate::wire::{FlashFigures, FlashOutcome, InventoryDisk, InventoryPost, Plan};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A regular file standing in for a disk with a given serial (`--target-file SERIAL=PATH`):
/// for tests, and for rehearsing a plan on a live system without touching its disks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTarget {
    /// The serial the plan names.
    pub serial: String,
    /// The file to write.
    pub path: PathBuf,
}

impl std::str::FromStr for FileTarget {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<FileTarget, String> {
        match s.split_once('=') {
            Some((serial, path)) if !serial.is_empty() && !path.is_empty() => {
                Ok(FileTarget { serial: serial.to_string(), path: PathBuf::from(path) })
            }
            _ => Err(format!("{s:?}: expected SERIAL=PATH")),
        }
    }
}

/// What one cycle needs to know.
#[derive(Debug, Clone)]
pub struct Options {
    /// bty-web's base URL (normalised by the client).
    pub server: String,
    /// This machine's MAC, as the server knows it.
    pub mac: String,
    /// Step the system clock from the server's `Date` when far behind (PID 1 only).
    pub set_clock: bool,
    /// Files that stand in for disks.
    pub file_targets: Vec<FileTarget>,
}

/// What the caller should do after the cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The work is done (flash reported `done`, inventory posted): reboot.
    Reboot,
    /// Hand over to the interactive wizard, with the plan's catalog, and the reason when this
    /// is a fallback after a failure (shown as a banner).
    Interactive {
        /// Catalog URL from the plan.
        catalog: Option<String>,
        /// Why the agent fell back, if it did.
        reason: Option<String>,
    },
    /// The server has nothing for this machine.
    Exit,
}

/// The disks this host has: sysfs discovery plus the file stand-ins.
pub fn disks(file_targets: &[FileTarget]) -> Result<Vec<Disk>> {
    let mut disks = crate::disk::discover_system(false)?;
    for t in file_targets {
        let meta = std::fs::metadata(&t.path).with_context(|| format!("target file {}", t.path.display()))?;
        disks.push(Disk {
            name: t.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            path: t.path.clone(),
            size_bytes: meta.len(),
            vendor: None,
            model: Some("file".to_string()),
            serial: Some(t.serial.clone()),
            transport: Transport::Unknown,
            removable: false,
            read_only: false,
            rotational: false,
            zeroes_offloaded: false,
            logical_sector_size: 512,
            physical_sector_size: 512,
            mountpoints: Vec::new(),
            partitions: Vec::new(),
            holds_running_system: false,
        });
    }
    Ok(disks)
}

/// A disk in the inventory wire shape (upstream's lsblk columns, plus the exact size).
pub fn inventory_disk(d: &Disk) -> InventoryDisk {
    let tran = match d.transport {
        Transport::Unknown => None,
        t => serde_json::to_value(t).ok().and_then(|v| v.as_str().map(str::to_string)),
    };
    InventoryDisk {
        path: d.path.display().to_string(),
        size: Some(crate::disk::human_size(d.size_bytes)),
        vendor: d.vendor.clone(),
        model: d.model.clone(),
        serial: d.serial.clone(),
        tran,
        removable: d.removable,
        readonly: d.read_only,
        size_bytes: Some(d.size_bytes),
    }
}

/// Runs one cycle against the server; see the module docs.
pub fn run(opts: &Options) -> Next {
    let client = Arc::new(Client::new(&opts.server, &opts.mac));
    crate::log_info!("server-driven mode: server={} mac={}", client.base(), opts.mac);
    let inventory_posted = post_inventory(&client, opts);
    if opts.set_clock {
        step_clock(&client);
    }
    let plan = match client.plan() {
        Ok(p) => p,
        Err(e) => {
            let reason = format!("plan fetch failed: {e}");
            crate::log_error!("{reason}");
            return Next::Interactive { catalog: None, reason: Some(reason) };
        }
    };
    match plan {
        PlanReply::Known(Plan::Flash { image, target_disk_serial, name, disk_image_sha, format, delta }) => {
            eprintln!("bty: plan: flash {name} ({image}) onto the disk with serial {target_disk_serial:?}");
            let delta = delta.unwrap_or(true);
            let job = FlashJob { image, serial: target_disk_serial, sha: disk_image_sha, format, delta };
            match flash(&client, opts, &job) {
                Ok(figures) => {
                    report(&client, FlashOutcome::Done, "", Some(&figures));
                    marker(FLASH_COMPLETE);
                    Next::Reboot
                }
                Err(e) => {
                    let reason = e.to_string();
                    eprintln!("bty: flash failed: {reason}");
                    report(&client, FlashOutcome::Failed, &reason, None);
                    Next::Interactive { catalog: None, reason: Some(reason) }
                }
            }
        }
        PlanReply::Known(Plan::Interactive { catalog }) => {
            eprintln!("bty: plan: interactive");
            Next::Interactive { catalog, reason: None }
        }
        PlanReply::Known(Plan::Inventory) => {
            eprintln!("bty: plan: inventory");
            if !inventory_posted {
                // The first post failed; one more try before the reboot, as upstream does.
                post_inventory(&client, opts);
            }
            Next::Reboot
        }
        PlanReply::Known(Plan::Exit) => {
            eprintln!("bty: plan: nothing to do for {}", opts.mac);
            Next::Exit
        }
        PlanReply::UnknownMode(mode) => {
            let reason = format!("unknown plan mode {mode:?}; falling back to interactive");
            eprintln!("bty: {reason}");
            Next::Interactive { catalog: None, reason: Some(reason) }
        }
    }
}

/// Posts disks + hardware summary; failures are logged, never fatal (upstream does the same).
fn post_inventory(client: &Client, opts: &Options) -> bool {
    let disks = match disks(&opts.file_targets) {
        Ok(d) => d,
        Err(e) => {
            crate::log_warn!("disk inventory failed: {e}");
            Vec::new()
        }
    };
    let body = InventoryPost {
        disks: disks.iter().take(crate::wire::MAX_INVENTORY_DISKS).map(inventory_disk).collect(),
        lshw: Some(super::hardware::summary(std::path::Path::new("/sys"), std::path::Path::new("/proc"))),
    };
    match client.post_inventory(&body) {
        Ok(()) => {
            eprintln!("bty: posted inventory -- {} disk(s), + lshw -> {}", body.disks.len(), client.base());
            true
        }
        Err(e) => {
            eprintln!("bty: posting inventory FAILED: {e}");
            false
        }
    }
}

fn step_clock(client: &Client) {
    let Some(server) = client.server_date() else { return };
    if let Some(to) = super::clock::step_needed(std::time::SystemTime::now(), server) {
        match super::clock::set(to) {
            Ok(()) => eprintln!("bty: clock set from the server: {}", httpdate::fmt_http_date(to)),
            Err(e) => crate::log_warn!("{e}"),
        }
    }
}

/// Posts `done`/`failed`, retrying a few times: the server's boot cycle depends on it.
fn report(client: &Client, status: FlashOutcome, reason: &str, figures: Option<&FlashFigures>) {
    for attempt in 1..=3 {
        match client.status(status, reason, figures) {
            Ok(()) => return,
            Err(e) => {
                crate::log_warn!("posting status (attempt {attempt}/3): {e}");
                std::thread::sleep(Duration::from_secs(2));
            }
        }
    }
}

/// The flash part of a plan.
struct FlashJob {
    image: String,
    serial: String,
    sha: Option<String>,
    format: Option<String>,
    /// Reflash by chunk index when the image has one.
    delta: bool,
}

/// Streams the plan's image to the disk with the plan's serial; every error says which step.
/// Returns what the flash fetched and wrote, for the server.
fn flash(client: &Arc<Client>, opts: &Options, job: &FlashJob) -> Result<FlashFigures> {
    marker(FLASH_STARTING);
    let disks = disks(&opts.file_targets).context("disk inventory failed")?;
    let target = crate::disk::find_by_serial(&disks, &job.serial)?.path.clone();
    let expected_sha256 = match job.sha.as_deref() {
        Some(hex) => Some(crate::source::parse_sha256(hex).context("the plan's disk_image_sha is invalid")?),
        None => None,
    };
    // The plan's format is a hint; detection by magic bytes decides when the hint is unknown
    // (upstream catalogs say "img" for raw).
    let format = job.format.as_deref().and_then(|f| crate::image::parse_format(f).ok());
    let source =
        crate::source::open(&job.image).with_context(|| format!("image {} is unreachable", job.image))?;
    eprintln!("bty: writing {} to {}", job.image, target.display());
    // What a full flash fetches: the stored file, whole.
    let stored_bytes = source.len();
    let mut flash_opts =
        crate::flash::FlashOptions { format, expected_sha256, hash: true, ..Default::default() };
    // Always by delta when the image has an index: comparing costs one read of the disk, which
    // the per-job reflash of an unchanged disk pays instead of the whole download and write.
    let source = if job.delta {
        let (source, index) = crate::index::for_delta(source, None)
            .with_context(|| format!("the chunk index of {} is unusable", job.image))?;
        flash_opts.delta = index.is_some();
        // The index says how its object decodes; the plan's format was only a hint.
        if index.is_some() {
            flash_opts.format = None;
        }
        flash_opts.index = index;
        source
    } else {
        source
    };

    let poster = ProgressPoster::start(client.clone());
    let mut milestones = Milestones::default();
    let cancel = AtomicBool::new(false);
    let result = crate::flash::flash(
        source,
        &target,
        &flash_opts,
        &mut |p| {
            poster.update(p);
            if let Some(pct) = milestones.crossed(p.bytes_written, p.total_bytes) {
                eprintln!("bty: write {pct}%");
            }
        },
        &cancel,
    );
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            poster.finish();
            return Err(match e.kind() {
                ErrorKind::Integrity => {
                    e.context("image digest check failed; the disk holds unverified data")
                }
                ErrorKind::Refused => e.context("flash refused"),
                _ => e.context("flash did not complete"),
            });
        }
    };
    // The last progress post carries the figures too (the server keeps them with the flash
    // even when the status has to go without them).
    let figures = figures_of(&report, stored_bytes);
    poster.finished(&figures);
    poster.finish();
    eprintln!(
        "bty: wrote {} bytes ({} as data, {} zeroed) in {:.1} s, source sha256 {}",
        report.image_bytes, report.bytes_written, report.bytes_zeroed, report.seconds, report.source_sha256
    );
    if let Some(n) = &report.network_delta {
        eprintln!(
            "bty: delta: {} chunks compared, {} unchanged, {} fetched; fetched {} of {} bytes, wrote {}",
            n.chunks_compared,
            n.chunks_unchanged,
            n.chunks_fetched,
            n.bytes_fetched,
            n.source_bytes,
            report.bytes_written
        );
    }
    Ok(figures)
}

/// The figures of a finished flash: by delta, what the index comparison fetched; otherwise
/// the whole stored file (`stored_bytes`, when the source said its length).
fn figures_of(report: &crate::flash::FlashReport, stored_bytes: Option<u64>) -> FlashFigures {
    let by_delta = report.network_delta.as_ref();
    FlashFigures {
        image_bytes: report.image_bytes,
        bytes_fetched: by_delta.map(|n| n.bytes_fetched).or(stored_bytes),
        bytes_written: report.bytes_written,
        chunks_compared: by_delta.map(|n| n.chunks_compared),
        chunks_unchanged: by_delta.map(|n| n.chunks_unchanged),
        chunks_fetched: by_delta.map(|n| n.chunks_fetched),
    }
}

/// Posts the latest progress from its own thread, so a slow server never slows the flash: the
/// first report at once, then at most one a second, and the last one when the flash ends.
/// Stops posting after a 404 (an older server without the route).
struct ProgressPoster {
    latest: Arc<Mutex<Option<crate::wire::Progress>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The pause between two progress posts.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

impl ProgressPoster {
    fn start(client: Arc<Client>) -> ProgressPoster {
        let latest: Arc<Mutex<Option<crate::wire::Progress>>> = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (latest.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut last_sent: Option<crate::wire::Progress> = None;
            let mut sent_at: Option<std::time::Instant> = None;
            loop {
                let stopping = s.load(Ordering::Relaxed);
                let due = sent_at.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY);
                let current = l.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if let Some(p) = current.filter(|p| (due || stopping) && last_sent.as_ref() != Some(p)) {
                    match client.progress(&p) {
                        Ok(true) => last_sent = Some(p),
                        Ok(false) => {
                            crate::log_info!(
                                "server has no progress route (older bty-web); not posting progress"
                            );
                            return;
                        }
                        Err(e) => crate::log_debug!("posting progress: {e}"),
                    }
                    sent_at = Some(std::time::Instant::now());
                }
                if stopping {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        ProgressPoster { latest, stop, thread: Some(thread) }
    }

    fn update(&self, p: &crate::flash::Progress) {
        let phase = serde_json::to_value(p.phase)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let wire = crate::wire::Progress {
            bytes_written: p.bytes_written,
            total_bytes: p.total_bytes,
            phase,
            figures: None,
        };
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(wire);
    }

    /// Adds the finished flash's figures to the last progress report.
    fn finished(&self, figures: &FlashFigures) {
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = latest.as_mut() {
            p.figures = Some(figures.clone());
        }
    }

    /// Posts the final state (if not yet posted) and stops the thread.
    fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_target_parses_serial_and_path() {
        let t: FileTarget = "BTYTEST=/tmp/disk.img".parse().unwrap();
        assert_eq!(t, FileTarget { serial: "BTYTEST".into(), path: "/tmp/disk.img".into() });
        assert!("nopath=".parse::<FileTarget>().is_err());
        assert!("=/x".parse::<FileTarget>().is_err());
        assert!("plain".parse::<FileTarget>().is_err());
    }
}
