//! `bty plan-agent` / `bty --mac MAC [--server URL]` / `/init`: the server-driven plan agent.
//!
//! As PID 1 (the netboot initramfs) it hands over to `bty::agent::pid1`, which never returns.
//! Otherwise it runs one cycle on the live system: `--server`/`--mac` default to `bty.server=`
//! and `bty.mac=` from /proc/cmdline, and `--no-reboot` stops after reporting.

use crate::args;
use crate::table::APPLETS;
use bty::agent::{cmdline, flow, pid1};

/// Follow the plan bty-web has for this machine: post the inventory, fetch the plan, flash
/// the assigned image onto the disk with the planned serial, report, reboot.
#[derive(argh::FromArgs)]
struct Args {
    /// bty-web base URL (default: bty.server= from /proc/cmdline, else http://bty-server)
    #[argh(option)]
    server: Option<String>,
    /// this machine's MAC as bty-web knows it (default: bty.mac= from /proc/cmdline)
    #[argh(option)]
    mac: Option<String>,
    /// stop after reporting instead of rebooting (tests, running on a live system)
    #[argh(switch)]
    no_reboot: bool,
    /// treat the regular file PATH as a disk with serial SERIAL (SERIAL=PATH; repeatable), to
    /// rehearse a plan without touching real disks
    #[argh(option)]
    target_file: Vec<flow::FileTarget>,
}

pub fn main(shown_as: &str, argv: &[String]) -> bty::Result<i32> {
    let has_tui = APPLETS.iter().any(|a| a.name == "tui");
    if rustix::process::getpid().is_init() {
        pid1::run(pid1::Fallback { tui: has_tui });
    }
    let args: Args = match args::parse(shown_as, argv) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let boot = cmdline::parse(&std::fs::read_to_string("/proc/cmdline").unwrap_or_default());
    let mac = args.mac.or(boot.mac).ok_or_else(|| {
        bty::Error::invalid(
            "no MAC: pass --mac aa:bb:cc:dd:ee:ff (or boot with bty.mac= on the kernel command line)",
        )
    })?;
    let server = args.server.or(boot.server).unwrap_or_default();
    let opts = flow::Options { server, mac, set_clock: false, file_targets: args.target_file };
    match flow::run(&opts) {
        flow::Next::Reboot if args.no_reboot => {
            eprintln!("bty: not rebooting (--no-reboot)");
            Ok(0)
        }
        flow::Next::Reboot => {
            bty::sys::reboot::sync();
            bty::sys::reboot::reboot()?;
            Ok(0)
        }
        flow::Next::Exit => Ok(0),
        flow::Next::Interactive { catalog, reason } => {
            let tui = APPLETS.iter().find(|a| a.name == "tui");
            let terminal = std::io::IsTerminal::is_terminal(&std::io::stdin());
            match (tui, terminal) {
                (Some(tui), true) => {
                    let tui_args: Vec<String> =
                        catalog.map(|c| vec!["--catalog".to_string(), c]).unwrap_or_default();
                    (tui.run)("bty", &tui_args)
                }
                _ => match reason {
                    Some(r) => Err(bty::Error::failed(r)),
                    None => {
                        eprintln!(
                            "bty: the plan is interactive; run `bty --catalog {}`",
                            catalog.unwrap_or_default()
                        );
                        Ok(0)
                    }
                },
            }
        }
    }
}
