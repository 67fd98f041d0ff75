//! The agent as PID 1 of the netboot initramfs: mount the pseudo filesystems, load the drivers
//! for the hardware present, bring the network up, run one cycle of the flow, then reboot or
//! hand the console to the wizard or a rescue shell. It never returns: if PID 1 exits the
//! kernel panics, which on a remote machine helps nobody.
//!
//! Every failure is printed on the console with what to do; a failed flash has already been
//! reported to the server by the flow. Children are reaped by the wait loop that runs the
//! fallback program (orphans are re-parented to PID 1); during the cycle the only child is
//! `udhcpc`, which is waited for directly.

use super::cmdline::{self, BootParams};
use super::flow::{self, Next};
use crate::error::{Error, Result};
use rustix::fd::OwnedFd;
use rustix::mount::MountFlags;
use std::path::Path;
use std::time::Duration;

/// How long to wait for the boot NIC to appear after its driver loaded.
const NIC_WAIT: Duration = Duration::from_secs(30);

/// What the binary offers as the interactive fallback.
#[derive(Debug, Clone, Copy)]
pub struct Fallback {
    /// Whether the `tui` applet exists in this binary.
    pub tui: bool,
}

/// Seconds since boot, for console lines (the serial log has no timestamps of its own).
fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// A console line with the uptime, the way the kernel prints its own.
pub(super) fn say(msg: &str) {
    eprintln!("bty: [{:8.3}] {msg}", uptime());
}

/// Runs PID 1; never returns.
pub fn run(fallback: Fallback) -> ! {
    mount_pseudo_filesystems();
    // Without the mirror, lines reach only /dev/console; with it, every kernel console.
    let console = match super::console::mirror_to_kmsg() {
        Ok(c) => Some(c),
        Err(e) => {
            say(&format!("warning: console lines are not mirrored to the kernel log: {e}"));
            None
        }
    };
    // The USB stick runs the same init with its own program (agent::stick): no server, no plan.
    let params = cmdline::parse(&std::fs::read_to_string("/proc/cmdline").unwrap_or_default());
    if params.mode.as_deref() == Some("usb") {
        super::stick::run(params)
    }
    let next = match std::panic::catch_unwind(cycle) {
        Ok(Ok(next)) => next,
        Ok(Err(e)) => {
            let reason = e.to_string();
            say(&format!("FAILED: {reason}"));
            Next::Interactive { catalog: None, reason: Some(reason) }
        }
        Err(_) => {
            Next::Interactive { catalog: None, reason: Some("the plan agent crashed (panic)".to_string()) }
        }
    };
    match next {
        Next::Reboot => reboot_now(),
        Next::Exit => {
            say("nothing to do; rebooting in 5 s so the firmware boots the local disk");
            std::thread::sleep(Duration::from_secs(5));
            reboot_now()
        }
        Next::Interactive { catalog, reason } => {
            if let Some(r) = reason {
                say(&format!("falling back to the console: {r}"));
            }
            fallback_forever(fallback, catalog.as_deref(), console.as_ref())
        }
    }
}

/// The work up to and including the flow; an error here means no cycle could run.
fn cycle() -> Result<Next> {
    say(&format!("plan agent {} starting as PID 1", crate::VERSION));
    let text = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let params = cmdline::parse(&text);
    for w in &params.warnings {
        say(&format!("warning: {w}"));
    }
    load_modules();
    let net = bring_up_network(&params)?;
    let server = params.server.clone().ok_or_else(|| {
        Error::invalid("no bty.server= on the kernel command line; boot through bty-web's /pxe/{mac} script")
    })?;
    let mac = params.mac.clone().unwrap_or(net);
    Ok(flow::run(&flow::Options { server, mac, set_clock: true, file_targets: Vec::new() }))
}

fn mount_pseudo_filesystems() {
    let nosuid = MountFlags::NOSUID | MountFlags::NOEXEC | MountFlags::NODEV;
    let mounts: [(&str, &str, MountFlags, &str); 4] = [
        ("proc", "/proc", nosuid, ""),
        ("sysfs", "/sys", nosuid, ""),
        ("devtmpfs", "/dev", MountFlags::NOSUID, "mode=0755"),
        ("tmpfs", "/run", MountFlags::NOSUID | MountFlags::NODEV, "mode=0755"),
    ];
    for (fstype, target, flags, data) in mounts {
        if let Err(e) = crate::sys::mount::mount(fstype, Path::new(target), flags, data) {
            say(&format!("warning: {e}"));
        }
    }
}

pub(super) fn load_modules() {
    let release = rustix::system::uname().release().to_string_lossy().into_owned();
    let dir = Path::new("/lib/modules").join(&release);
    match super::modules::load_for_present_devices(&dir, Path::new("/sys"), 5) {
        Ok(r) => {
            say(&format!("loaded {} kernel modules: {}", r.loaded.len(), r.loaded.join(" ")));
            for (name, why) in r.failed {
                say(&format!("warning: module {name}: {why}"));
            }
        }
        Err(e) => say(&format!("warning: no kernel modules loaded: {e}")),
    }
}

/// Brings the network up; returns the MAC of the NIC used.
fn bring_up_network(params: &BootParams) -> Result<String> {
    let c = super::net::bring_up(Path::new("/sys"), params, NIC_WAIT)?;
    let via = c.gateway.map(|g| format!(" via {g}")).unwrap_or_default();
    let from = match c.source {
        super::net::AddressSource::Cmdline => "from iPXE (bty.ip=)",
        super::net::AddressSource::Dhcp => "from DHCP",
    };
    say(&format!("network: {} ({}) {}/{}{via} {from}", c.nic.name, c.nic.mac, c.addr.addr, c.addr.prefix));
    if let Some(dns) = c.dns {
        if let Err(e) = super::net::write_resolv_conf(Path::new("/"), dns) {
            say(&format!("warning: {e}"));
        }
    }
    Ok(c.nic.mac)
}

pub(super) fn reboot_now() -> ! {
    // Let the console mirror write out the last lines before the machine goes away.
    std::thread::sleep(Duration::from_millis(300));
    crate::sys::reboot::sync();
    if let Err(e) = crate::sys::reboot::reboot() {
        say(&format!("reboot failed: {e}"));
    }
    sleep_forever("reboot failed; power-cycle the machine")
}

/// Runs the wizard (or a rescue shell) on the console, again and again, reaping every child.
/// The child gets the real console (not the kmsg mirror's pipe) as its terminal.
fn fallback_forever(fallback: Fallback, catalog: Option<&str>, console: Option<&OwnedFd>) -> ! {
    loop {
        let mut cmd = if fallback.tui {
            let mut c = std::process::Command::new("/proc/self/exe");
            match catalog {
                Some(cat) => c.args(["--catalog", cat]),
                None => c.arg("tui"),
            };
            c
        } else if Path::new("/bin/sh").exists() {
            say("starting a rescue shell (busybox sh); `reboot -f` restarts the machine");
            std::process::Command::new("/bin/sh")
        } else {
            sleep_forever("no wizard and no shell in this initramfs; power-cycle the machine")
        };
        std::os::unix::process::CommandExt::arg0(&mut cmd, "bty");
        cmd.env("PATH", "/bin:/sbin:/usr/bin:/usr/sbin").env("TERM", "linux");
        if let Some(fd) = console {
            if let (Ok(i), Ok(o), Ok(e)) = (fd.try_clone(), fd.try_clone(), fd.try_clone()) {
                use std::process::Stdio;
                cmd.stdin(Stdio::from(i)).stdout(Stdio::from(o)).stderr(Stdio::from(e));
            }
        }
        match cmd.spawn() {
            Ok(child) => reap_until(child.id()),
            Err(e) => say(&format!("starting the console program failed: {e}")),
        }
        say("console program ended; starting it again in 3 s");
        std::thread::sleep(Duration::from_secs(3));
    }
}

/// Waits for any child until `pid` has exited, reaping orphans on the way.
fn reap_until(pid: u32) {
    loop {
        match rustix::process::wait(rustix::process::WaitOptions::empty()) {
            Ok(Some((p, _))) if p.as_raw_nonzero().get() as u32 == pid => return,
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return,
        }
    }
}

pub(super) fn sleep_forever(msg: &str) -> ! {
    loop {
        say(msg);
        std::thread::sleep(Duration::from_secs(600));
    }
}
