//! The multicall entry point: picks an applet by `argv[0]` or by the first argument, and is the
//! one place where library errors become messages and exit codes.
//!
//! Invoked as `bty-<applet>` (a symlink made by `bty --install DIR`), as `init` (the plan agent
//! as PID 1 in the netboot initramfs), or as `bty <applet|verb> ...`. An unknown name exits 127
//! with the list, as BusyBox does.

mod args;
mod catalog;
mod disks;
mod flash;
mod index;
mod inspect;
mod plan_agent;
mod table;
mod tftp;
mod tui;
mod web;

use std::io::{IsTerminal, Write};
use std::path::Path;
use table::{Applet, APPLETS};

fn main() {
    let args: Vec<String> = match std::env::args_os().map(|a| a.into_string()).collect() {
        Ok(args) => args,
        Err(bad) => {
            eprintln!("bty: argument {bad:?} is not valid UTF-8");
            std::process::exit(2);
        }
    };
    std::process::exit(dispatch(&args));
}

/// Picks the applet and runs it; returns the exit code.
fn dispatch(args: &[String]) -> i32 {
    let argv0 = args.first().map(String::as_str).unwrap_or("bty");
    let base = Path::new(argv0).file_name().and_then(|n| n.to_str()).unwrap_or("bty");
    let rest = args.get(1..).unwrap_or(&[]);
    if base == "init" {
        return run_named("plan-agent", base, rest);
    }
    if let Some(name) = base.strip_prefix("bty-") {
        return run_named(name, base, rest);
    }
    if base != "bty" {
        return unknown(base);
    }
    front_door(rest)
}

/// `bty [--list|--install DIR|--version|--help [APPLET]|--catalog SRC|--mac MAC|APPLET ...]`.
fn front_door(args: &[String]) -> i32 {
    let first = args.first().map(String::as_str);
    match first {
        None => {
            if std::io::stdin().is_terminal() && find("tui").is_some() {
                run_named("tui", "bty", args)
            } else {
                print_usage();
                2
            }
        }
        Some("--list") => list(),
        Some("--version" | "-V") => {
            println!("bty {}", bty::VERSION);
            0
        }
        Some("--help" | "-h" | "help") => match args.get(1) {
            Some(name) => run_named(name, &format!("bty {name}"), &["--help".to_string()]),
            None => {
                print_usage();
                0
            }
        },
        Some("--install") => match args.get(1) {
            Some(dir) => finish(install(Path::new(dir))),
            None => {
                eprintln!("bty: --install needs a directory: bty --install /usr/local/bin");
                2
            }
        },
        // The shapes the upstream live environment uses: the wizard with a catalog, and the
        // server-driven plan agent.
        Some("--catalog") => run_named("tui", "bty", args),
        Some("--mac" | "--server") => run_named("plan-agent", "bty", args),
        Some(name) => run_named(name, &format!("bty {name}"), &args[1..]),
    }
}

fn find(name: &str) -> Option<&'static Applet> {
    APPLETS.iter().find(|a| a.name == name)
}

fn run_named(name: &str, shown_as: &str, args: &[String]) -> i32 {
    match find(name) {
        Some(applet) => finish((applet.run)(shown_as, args)),
        None => unknown(name),
    }
}

/// Turns an applet's result into an exit code, printing the error once.
fn finish(result: bty::Result<i32>) -> i32 {
    match result {
        Ok(code) => code,
        // A closed pipe (`bty disks | head -1`) is the reader's choice, not a failure.
        Err(e) if e.io_kind() == Some(std::io::ErrorKind::BrokenPipe) => 0,
        Err(e) => {
            eprintln!("bty: error: {e}");
            e.kind().exit_code()
        }
    }
}

fn unknown(name: &str) -> i32 {
    eprintln!("bty: unknown applet {name:?}; applets are:");
    for a in APPLETS {
        eprintln!("  {}", a.name);
    }
    127
}

fn list() -> i32 {
    let mut out = std::io::stdout().lock();
    for a in APPLETS {
        if writeln!(out, "{}", a.name).is_err() {
            return 0;
        }
    }
    0
}

fn print_usage() {
    println!("bty {} — flash pre-built OS images onto disks", bty::VERSION);
    println!();
    println!("usage: bty APPLET [ARGS...]   or   bty-APPLET [ARGS...]");
    println!("       bty --list | --install DIR | --version | --help [APPLET]");
    println!();
    println!("applets:");
    for a in APPLETS {
        println!("  {:<12} {}", a.name, a.summary);
    }
}

/// Makes `DIR/bty-<applet>` symlinks to this binary (replacing stale links, never regular files).
fn install(dir: &Path) -> bty::Result<i32> {
    use bty::Context;
    let exe = std::env::current_exe().context("finding this binary's path")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for a in APPLETS {
        let link = dir.join(format!("bty-{}", a.name));
        match std::fs::symlink_metadata(&link) {
            Ok(meta) if meta.file_type().is_symlink() => {
                std::fs::remove_file(&link).with_context(|| format!("replacing {}", link.display()))?
            }
            Ok(_) => {
                return Err(bty::Error::refused(format!(
                    "{} exists and is not a symlink; remove it first",
                    link.display()
                )))
            }
            Err(_) => {}
        }
        std::os::unix::fs::symlink(&exe, &link).with_context(|| format!("linking {}", link.display()))?;
        println!("{}", link.display());
    }
    Ok(0)
}
