//! `bty flash SRC TARGET`: writes an image onto a disk (or a file), with a confirmation on a
//! terminal, a progress bar or JSON progress lines, and SIGINT/SIGTERM as cancel.

use argh::FromArgs;
use bty::disk;
use bty::flash::{self, FlashOptions, FlashReport, Progress, TargetInfo};
use bty::{Context, Error};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Write an image (raw, .zst, .gz, .xz, .bz2, qcow2) onto a disk or a regular file.
#[derive(FromArgs)]
struct Args {
    /// the image: a path, http(s)://, oras://, or the name of a catalog image
    #[argh(positional)]
    src: String,
    /// the target: a block device (see `bty disks`) or a regular file
    #[argh(positional)]
    target: PathBuf,
    /// do not ask for confirmation
    #[argh(switch)]
    yes: bool,
    /// check everything, write nothing
    #[argh(switch)]
    dry_run: bool,
    /// read the target back after writing and compare
    #[argh(switch)]
    verify: bool,
    /// write only the blocks that differ from what the target holds; with a chunk index
    /// (SRC.index beside the image, or --index) fetch only the chunks that differ
    #[argh(switch)]
    delta: bool,
    /// the image's chunk index for --delta (a path or URL; default: SRC.index if it exists)
    #[argh(option)]
    index: Option<String>,
    /// the sha256 the image file must have (hex)
    #[argh(option)]
    sha256: Option<String>,
    /// report the image file's sha256 even when none is checked (costs a hash pass)
    #[argh(switch)]
    hash: bool,
    /// force the image format (raw, zst, gz, xz, bz2, qcow2)
    #[argh(option)]
    format: Option<String>,
    /// print JSON lines: progress events, then a result object
    #[argh(switch)]
    json: bool,
    /// catalog to look SRC up in when SRC is an image name: a path, http(s):// URL or oras:// ref
    #[argh(option)]
    catalog: Option<String>,
}

/// Entry point (see `table.rs`).
pub fn main(shown_as: &str, args: &[String]) -> bty::Result<i32> {
    let args: Args = match crate::args::parse(shown_as, args) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    // With --json every failure, a refusal before the first byte included, is a JSON line too.
    run(&args).inspect_err(|e| {
        if args.json {
            let line = serde_json::json!({
                "event": "error",
                "schema_version": 1,
                "exit_code": e.kind().exit_code(),
                "message": e.to_string(),
            });
            println!("{line}");
        }
    })
}

fn run(args: &Args) -> bty::Result<i32> {
    if args.src.is_empty() || args.target.as_os_str().is_empty() {
        return Err(Error::invalid(
            "an empty IMAGE or TARGET was given; usage: bty flash IMAGE TARGET (a block device, see `bty disks`, or a file)",
        ));
    }
    // Until the flash begins writing, a signal ends the process at once with 130: nothing has
    // been written, and the checks may be waiting on a slow source. From then on it sets
    // `cancel`, and the engine stops, flushes and says how far it got.
    let cancel = Arc::new(AtomicBool::new(false));
    let checking = Arc::new(AtomicBool::new(true));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, checking.clone())
            .and_then(|_| signal_hook::flag::register(signal, cancel.clone()))
            .context("installing the SIGINT/SIGTERM handler")?;
    }
    // Usage mistakes first, before a source is looked for.
    let format = args.format.as_deref().map(bty::image::parse_format).transpose()?;
    let resolved = bty::source::resolve(&args.src, args.catalog.as_deref())?;
    let mut opts = FlashOptions {
        format,
        expected_sha256: match args.sha256.as_deref() {
            Some(hex) => Some(bty::source::parse_sha256(hex)?),
            None => resolved.expected_sha256,
        },
        verify: args.verify,
        delta: args.delta,
        index: None,
        dry_run: args.dry_run,
        hash: args.hash,
    };
    let mut source = resolved.source;
    if args.index.is_some() && !args.delta {
        return Err(Error::invalid("--index is used by --delta; add --delta"));
    }
    if args.delta {
        (source, opts.index) = bty::index::for_delta(source, args.index.as_deref())?;
    }
    let info = flash::check_target(&args.target, None)?;
    if !args.yes && !args.dry_run {
        confirm(&args.src, &info)?;
    }
    let bar = !args.json && std::io::stderr().is_terminal();
    let mut on_progress = |p: &Progress| {
        if p.phase != flash::Phase::Checking {
            checking.store(false, Ordering::SeqCst);
        }
        if args.json {
            let line = serde_json::json!({
                "event": "progress",
                "schema_version": 1,
                "phase": p.phase,
                "bytes_written": p.bytes_written,
                "total_bytes": p.total_bytes,
                "rate": p.rate,
                "eta_seconds": p.eta_seconds,
            });
            println!("{line}");
        } else if bar {
            eprint!("\r\x1b[K{}", progress_line(p));
        }
    };
    let result = flash::flash(source, &args.target, &opts, &mut on_progress, &cancel);
    if bar {
        eprintln!();
    }
    print_report(args, &result?)?;
    Ok(0)
}

/// Asks on the terminal; without one, refuses and says how to go on.
fn confirm(src: &str, info: &TargetInfo) -> bty::Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::refused(format!(
            "refusing to overwrite {} without confirmation: there is no terminal to ask on; pass --yes",
            info.path.display()
        )));
    }
    let what = match &info.disk {
        Some(d) => {
            let size = disk::human_size(info.size_bytes.unwrap_or(d.size_bytes));
            let name = [d.vendor.as_deref(), d.model.as_deref()].into_iter().flatten().collect::<Vec<_>>();
            let facts: Vec<String> = std::iter::once(size)
                .chain((!name.is_empty()).then(|| name.join(" ")))
                .chain(d.serial.as_deref().map(|s| format!("serial {s}")))
                .collect();
            format!("{} ({})", info.path.display(), facts.join(", "))
        }
        None => format!("the file {}", info.path.display()),
    };
    eprint!("bty: write {src} onto {what}?\nEverything on it will be lost. Type yes to continue: ");
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).context("reading the confirmation")?;
    if answer.trim() != "yes" {
        return Err(Error::refused(format!("not confirmed; {} was not touched", info.path.display())));
    }
    Ok(())
}

/// `[#########-----------]  45%  1.2 GiB / 2.0 GiB  150.3 MB/s  ETA 0:12  writing`
fn progress_line(p: &Progress) -> String {
    let phase =
        serde_json::to_value(p.phase).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let rate = format!("{:.1} MB/s", p.rate / 1e6);
    match p.total_bytes.filter(|&t| t > 0) {
        Some(total) => {
            let frac = (p.bytes_written as f64 / total as f64).clamp(0.0, 1.0);
            let filled = (frac * 30.0) as usize;
            let eta = p
                .eta_seconds
                .map(|s| format!("ETA {}:{:02}", s as u64 / 60, s as u64 % 60))
                .unwrap_or_default();
            format!(
                "[{}{}] {:3.0}%  {} / {}  {rate}  {eta}  {phase}",
                "#".repeat(filled),
                "-".repeat(30 - filled),
                frac * 100.0,
                disk::human_size(p.bytes_written),
                disk::human_size(total)
            )
        }
        None => format!("{}  {rate}  {phase}", disk::human_size(p.bytes_written)),
    }
}

fn print_report(args: &Args, r: &FlashReport) -> bty::Result<()> {
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut v = serde_json::to_value(r).unwrap_or_default();
        if let Some(map) = v.as_object_mut() {
            map.insert("event".into(), "result".into());
            map.insert("schema_version".into(), 1.into());
            map.insert("target".into(), args.target.display().to_string().into());
            map.insert("dry_run".into(), args.dry_run.into());
        }
        writeln!(out, "{v}")?;
        return Ok(());
    }
    let target = args.target.display();
    if args.dry_run {
        writeln!(
            out,
            "dry run: {} ({}) could be written onto {target}; nothing was written",
            args.src,
            r.format.name()
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "wrote {} ({}, {}) onto {target} in {:.1} s: {} written, {} zeroed, {} unchanged{}",
        args.src,
        r.format.name(),
        disk::human_size(r.image_bytes),
        r.seconds,
        disk::human_size(r.bytes_written),
        disk::human_size(r.bytes_zeroed),
        disk::human_size(r.bytes_unchanged),
        if r.verified == Some(true) { "; verified by reading back" } else { "" }
    )?;
    if let Some(n) = &r.network_delta {
        writeln!(
            out,
            "by chunk index: {} chunks compared, {} unchanged, {} fetched, {} zeroed; fetched {} of {}, wrote {}",
            n.chunks_compared,
            n.chunks_unchanged,
            n.chunks_fetched,
            n.chunks_zeroed,
            disk::human_size(n.bytes_fetched),
            disk::human_size(n.source_bytes),
            disk::human_size(r.bytes_written)
        )?;
    }
    if !r.source_sha256.is_empty() {
        writeln!(out, "sha256 of {}: {}", args.src, r.source_sha256)?;
    }
    Ok(())
}
