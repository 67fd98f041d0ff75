//! PID 1 of the USB live stick (`bty.mode=usb` on the kernel command line): no server, no plan.
//!
//! It loads the drivers for what is present, waits (bounded) for the stick's exFAT partition
//! labelled `BTY_IMAGES` and mounts it read-only on `/images`, starts DHCP in the background
//! (only catalogs on the network need it), a rescue shell on tty2, and then either flashes
//! unattended (`bty.auto=IMAGE[@SERIAL]`) and reboots, or offers the wizard on tty1 and on the
//! serial console: the first console where Enter is pressed gets it, the others say where it
//! runs. Every disk holding a `BTY_IMAGES` partition (the stick itself) is hidden from both.
//!
//! Children are waited for by their own pid (the wizard, the rescue shell, udhcpc), never by a
//! catch-all `wait`, because they run on different threads; an orphan of the rescue shell may
//! stay a zombie until the machine restarts, which costs nothing that matters here.

use super::cmdline::BootParams;
use super::console::{self, Milestones};
use super::pid1::{load_modules, reboot_now, say, sleep_forever};
use crate::catalog;
use crate::disk::{self, Disk};
use crate::error::{Context, Error, Result};
use crate::flash::{self, FlashOptions};
use rustix::mount::MountFlags;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// The label (and GPT partition name) of the stick's image partition.
pub const IMAGES_LABEL: &str = "BTY_IMAGES";
/// Where the image partition is mounted, read-only.
const IMAGES_DIR: &str = "/images";
/// How long to wait for the image partition: USB enumeration takes seconds on real machines.
const IMAGES_WAIT: Duration = Duration::from_secs(30);
/// How long DHCP may wait for a NIC to appear (it runs in the background).
const NIC_WAIT: Duration = Duration::from_secs(10);
/// The consoles the wizard is offered on, in order (missing ones are skipped).
const CONSOLES: [&str; 2] = ["tty1", "ttyS0"];

/// `bty.auto=IMAGE[@SERIAL]`: what to flash unattended, and onto which disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auto {
    /// The image's file name on `BTY_IMAGES` (or a catalog entry's name).
    pub image: String,
    /// The target disk's serial; without it the only non-removable disk is the target.
    pub serial: Option<String>,
}

impl Auto {
    /// Parses the value of `bty.auto=`.
    pub fn parse(value: &str) -> Result<Auto> {
        let (image, serial) = match value.rsplit_once('@') {
            Some((i, s)) => (i, Some(s)),
            None => (value, None),
        };
        if image.is_empty() || serial == Some("") {
            return Err(Error::invalid(format!(
                "bty.auto={value} is not IMAGE or IMAGE@SERIAL; edit the boot menu entry"
            )));
        }
        Ok(Auto { image: image.to_string(), serial: serial.map(str::to_string) })
    }
}

/// The disk an unattended flash writes: the one whose serial matches, or, without a serial, the
/// only non-removable disk. Anything else is refused with the candidates named, so the
/// operator can add or fix the serial. `disks` must not contain the stick.
pub fn auto_target<'a>(disks: &'a [Disk], serial: Option<&str>) -> Result<&'a Disk> {
    let list = |ds: &[&Disk]| {
        let names: Vec<String> = ds
            .iter()
            .map(|d| format!("{} (serial {})", d.name, d.serial.as_deref().unwrap_or("none")))
            .collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    let all: Vec<&Disk> = disks.iter().collect();
    let (candidates, what): (Vec<&Disk>, String) = match serial {
        Some(s) => {
            (all.iter().copied().filter(|d| d.serial.as_deref() == Some(s)).collect(), format!("serial {s}"))
        }
        None => (all.iter().copied().filter(|d| !d.removable).collect(), "no serial given".to_string()),
    };
    match candidates.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::refused(format!(
            "bty.auto: no target disk matches ({what}); disks: {}; set bty.auto=IMAGE@SERIAL",
            list(&all)
        ))),
        many => Err(Error::refused(format!(
            "bty.auto: ambiguous target, {} disks match ({what}): {}; nothing was written; \
             set bty.auto=IMAGE@SERIAL to name one",
            many.len(),
            list(many)
        ))),
    }
}

/// A partition that belongs to the stick.
#[derive(Debug, Clone)]
struct ImagesPartition {
    /// The partition's device node, when its exFAT label is `BTY_IMAGES` (mountable).
    exfat: bool,
    part: PathBuf,
    disk: PathBuf,
}

/// Runs the stick; never returns.
pub fn run(params: BootParams) -> ! {
    say(&format!("bty {} USB stick starting as PID 1", crate::VERSION));
    load_modules();
    let parts = wait_for_images_partition();
    let hidden: Vec<PathBuf> = parts.iter().map(|p| p.disk.clone()).collect();
    let root = match parts.iter().find(|p| p.exfat) {
        Some(p) => match mount_images(&p.part) {
            Ok(()) => {
                say(&format!("{IMAGES_LABEL} ({}) mounted read-only on {IMAGES_DIR}", p.part.display()));
                Some(PathBuf::from(IMAGES_DIR))
            }
            Err(e) => {
                say(&format!("warning: {e}; only catalogs on the network can be flashed"));
                None
            }
        },
        None => {
            say(&format!("no {IMAGES_LABEL} partition found; only catalogs on the network can be flashed"));
            None
        }
    };
    for d in &hidden {
        say(&format!("{} holds {IMAGES_LABEL}: never offered as a target", d.display()));
    }
    let dhcp_params = params.clone();
    std::thread::spawn(move || network(&dhcp_params));
    std::thread::spawn(rescue_shell_forever);

    let mut banner = None;
    if let Some(value) = &params.auto {
        match auto_flash(value, root.as_deref(), &hidden) {
            Ok(()) => {
                console::marker(console::FLASH_COMPLETE);
                reboot_now()
            }
            Err(e) => {
                say(&format!("FAILED: {e}"));
                banner = Some(format!("unattended flash failed: {e}"));
            }
        }
    }
    consoles_forever(root.as_deref(), &hidden, banner.as_deref())
}

/// Waits up to [`IMAGES_WAIT`] for a partition labelled `BTY_IMAGES`, loading drivers for
/// devices that appear meanwhile (USB storage behind a hub shows up late).
fn wait_for_images_partition() -> Vec<ImagesPartition> {
    let start = Instant::now();
    let mut told = false;
    loop {
        let found = images_partitions(Path::new("/sys"));
        if found.iter().any(|p| p.exfat) || start.elapsed() >= IMAGES_WAIT {
            return found;
        }
        if !told {
            say(&format!(
                "waiting up to {} s for the {IMAGES_LABEL} partition (USB disks take a while to appear)",
                IMAGES_WAIT.as_secs()
            ));
            told = true;
        }
        std::thread::sleep(Duration::from_secs(1));
        let release = rustix::system::uname().release().to_string_lossy().into_owned();
        let _ = super::modules::load_for_present_devices(
            &Path::new("/lib/modules").join(release),
            Path::new("/sys"),
            2,
        );
    }
}

/// Every partition that is the stick's: exFAT labelled `BTY_IMAGES`, or named so in the GPT.
fn images_partitions(sys: &Path) -> Vec<ImagesPartition> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(sys.join("class/block")) else { return out };
    for e in entries.flatten() {
        let dir = e.path();
        if !dir.join("partition").exists() {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let part = Path::new("/dev").join(&name);
        let exfat = File::open(&part).ok().and_then(|mut f| disk::exfat::label(&mut f)).as_deref()
            == Some(IMAGES_LABEL);
        let named = std::fs::read_to_string(dir.join("uevent"))
            .is_ok_and(|u| u.lines().any(|l| l == format!("PARTNAME={IMAGES_LABEL}")));
        if !exfat && !named {
            continue;
        }
        // /sys/class/block/sda2 → …/block/sda/sda2: the parent directory is the disk.
        let Some(disk) = std::fs::canonicalize(&dir)
            .ok()
            .and_then(|p| p.parent().and_then(|d| d.file_name()).map(|n| Path::new("/dev").join(n)))
        else {
            continue;
        };
        out.push(ImagesPartition { exfat, part, disk });
    }
    out.sort_by(|a, b| a.part.cmp(&b.part));
    out
}

fn mount_images(part: &Path) -> Result<()> {
    let release = rustix::system::uname().release().to_string_lossy().into_owned();
    // Filesystems have no modalias: the module is found by its fs- alias.
    let _ = super::modules::load_by_alias(
        &Path::new("/lib/modules").join(release),
        Path::new("/sys"),
        "fs-exfat",
    );
    let flags = MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    crate::sys::mount::mount_device(part, "exfat", Path::new(IMAGES_DIR), flags, "")
}

/// DHCP on the first NIC with a cable; only catalogs on the network need it.
fn network(params: &BootParams) {
    match super::net::bring_up(Path::new("/sys"), params, NIC_WAIT) {
        Ok(c) => {
            say(&format!(
                "network: {} {}/{} (catalogs on the network can be used)",
                c.nic.name, c.addr.addr, c.addr.prefix
            ));
            if let Some(dns) = c.dns {
                let _ = super::net::write_resolv_conf(Path::new("/"), dns);
            }
        }
        Err(e) => say(&format!("no network ({e}); the images on the stick need none")),
    }
}

/// The unattended flash of `bty.auto=`: find the image, pick the disk, write, verify the digest
/// when the image has one.
fn auto_flash(value: &str, root: Option<&Path>, hidden: &[PathBuf]) -> Result<()> {
    let auto = Auto::parse(value)?;
    let entries = match root {
        Some(r) => catalog::scan_local(r)?,
        None => Vec::new(),
    };
    let entry = entries.iter().find(|e| e.name == auto.image).ok_or_else(|| {
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        Error::not_found(format!(
            "bty.auto: no image {} on {IMAGES_LABEL}; it has: {}",
            auto.image,
            if names.is_empty() { "nothing".to_string() } else { names.join(", ") }
        ))
    })?;
    let mut disks = disk::discover_system(false)?;
    disks.retain(|d| !hidden.contains(&d.path));
    let target = auto_target(&disks, auto.serial.as_deref())?;
    if let Some(why) = disk::refusal(target, None) {
        return Err(Error::refused(format!("bty.auto: {} refused: {why}", target.path.display())));
    }
    console::marker(console::FLASH_STARTING);
    say(&format!(
        "writing {} onto {} ({})",
        entry.name,
        target.path.display(),
        disk::human_size(target.size_bytes)
    ));
    let source = crate::source::open(&entry.src)?;
    let expected = entry.sha256.as_deref().map(crate::source::parse_sha256).transpose()?;
    let options = FlashOptions { expected_sha256: expected, hash: true, ..FlashOptions::default() };
    let mut milestones = Milestones::default();
    let mut progress = |p: &flash::Progress| {
        if let Some(pct) = milestones.crossed(p.bytes_written, p.total_bytes) {
            console::marker(&format!("bty: write {pct}%"));
        }
    };
    let report = flash::flash(source, &target.path, &options, &mut progress, &AtomicBool::new(false))
        .with_context(|| format!("flashing {} onto {}", entry.name, target.path.display()))?;
    say(&format!("wrote {} bytes onto {}", report.bytes_written, target.path.display()));
    Ok(())
}

/// Offers the wizard on every console; the first where Enter is pressed runs it. Again and
/// again: quitting the wizard comes back here.
fn consoles_forever(root: Option<&Path>, hidden: &[PathBuf], banner: Option<&str>) -> ! {
    loop {
        let mut consoles: Vec<(&str, File)> = CONSOLES
            .iter()
            .filter_map(|n| {
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(format!("/dev/{n}"))
                    .ok()
                    .map(|f| (*n, f))
            })
            .collect();
        if consoles.is_empty() {
            sleep_forever("no console (tty1, ttyS0) could be opened; power-cycle the machine");
        }
        for (name, f) in &mut consoles {
            let mut text = String::from("\r\n");
            if let Some(b) = banner {
                text.push_str(&format!("bty: {b}\r\n"));
            }
            text.push_str(&format!(
                "bty USB stick: press Enter to start the wizard on this console ({name}); rescue shell on tty2 (Alt+F2)\r\n"
            ));
            let _ = f.write_all(text.as_bytes());
        }
        let winner = first_used(&consoles);
        let (name, file) = consoles.swap_remove(winner);
        for (_, other) in &mut consoles {
            let _ = other.write_all(format!("\r\nbty: the wizard is running on {name}\r\n").as_bytes());
        }
        say(&format!("wizard started on {name}"));
        match wizard(&file, root, hidden) {
            Ok(()) => say(&format!("wizard on {name} ended")),
            Err(e) => say(&format!("starting the wizard failed: {e}")),
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Index of the first console with input (a whole line: consoles are in canonical mode).
fn first_used(consoles: &[(&str, File)]) -> usize {
    use rustix::event::{poll, PollFd, PollFlags};
    loop {
        let mut fds: Vec<PollFd> = consoles.iter().map(|(_, f)| PollFd::new(f, PollFlags::IN)).collect();
        if poll(&mut fds, None).is_ok() {
            if let Some(i) = fds.iter().position(|p| p.revents().contains(PollFlags::IN)) {
                let mut buf = [0u8; 256];
                let _ = (&consoles[i].1).read(&mut buf); // the Enter that chose this console
                return i;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs the wizard with `console` as its terminal until it ends.
fn wizard(console: &File, root: Option<&Path>, hidden: &[PathBuf]) -> Result<()> {
    let mut cmd = std::process::Command::new("/proc/self/exe");
    std::os::unix::process::CommandExt::arg0(&mut cmd, "bty");
    cmd.arg("tui");
    if let Some(r) = root {
        cmd.arg("--image-root").arg(r);
        let catalog = r.join("catalog.toml");
        if catalog.is_file() {
            cmd.arg("--catalog").arg(catalog);
        }
    }
    for d in hidden {
        cmd.arg("--hide-disk").arg(d);
    }
    cmd.env("PATH", "/bin:/sbin").env("TERM", "linux");
    let io = |f: &File| f.try_clone().map(std::process::Stdio::from).context("duplicating the console");
    cmd.stdin(io(console)?).stdout(io(console)?).stderr(io(console)?);
    cmd.spawn().context("starting the wizard")?.wait().context("waiting for the wizard")?;
    Ok(())
}

/// A busybox shell on tty2, started again whenever it exits.
fn rescue_shell_forever() {
    loop {
        let Ok(tty) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty2") else { return };
        let _ = (&tty).write_all(b"\r\nbty rescue shell (busybox); `reboot -f` restarts the machine\r\n");
        let mut cmd = std::process::Command::new("/bin/busybox");
        // setsid -c: a session of its own with tty2 as controlling terminal, so Ctrl+C works.
        cmd.args(["setsid", "-c", "/bin/sh"]).env("PATH", "/bin:/sbin").env("TERM", "linux");
        let (Ok(i), Ok(o), Ok(e)) = (tty.try_clone(), tty.try_clone(), tty.try_clone()) else { return };
        cmd.stdin(i).stdout(o).stderr(e);
        match cmd.spawn() {
            Ok(mut child) => {
                let _ = child.wait();
            }
            Err(_) => return,
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(name: &str, serial: Option<&str>, removable: bool) -> Disk {
        Disk {
            name: name.to_string(),
            path: PathBuf::from(format!("/dev/{name}")),
            size_bytes: 1 << 30,
            vendor: None,
            model: None,
            serial: serial.map(str::to_string),
            transport: disk::Transport::Virtio,
            removable,
            read_only: false,
            rotational: false,
            zeroes_offloaded: false,
            logical_sector_size: 512,
            physical_sector_size: 512,
            mountpoints: Vec::new(),
            partitions: Vec::new(),
            holds_running_system: false,
        }
    }

    #[test]
    fn auto_value_is_image_with_an_optional_serial() {
        assert_eq!(Auto::parse("a.img.zst").unwrap(), Auto { image: "a.img.zst".into(), serial: None });
        assert_eq!(
            Auto::parse("a.img@S-1").unwrap(),
            Auto { image: "a.img".into(), serial: Some("S-1".into()) }
        );
        for bad in ["", "@S1", "a.img@"] {
            assert!(Auto::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn auto_target_takes_the_serial_or_the_only_fixed_disk() {
        let disks = [disk("vda", Some("A"), false), disk("sdb", Some("B"), true)];
        assert_eq!(auto_target(&disks, Some("B")).unwrap().name, "sdb");
        assert_eq!(auto_target(&disks, None).unwrap().name, "vda");
    }

    #[test]
    fn auto_target_refuses_when_ambiguous_or_unmatched() {
        let two = [disk("vda", Some("A"), false), disk("vdb", Some("B"), false)];
        let e = auto_target(&two, None).unwrap_err().to_string();
        assert!(e.contains("ambiguous") && e.contains("vda (serial A)") && e.contains("vdb"), "{e}");
        let e = auto_target(&two, Some("C")).unwrap_err().to_string();
        assert!(e.contains("no target disk matches (serial C)"), "{e}");
        let same = [disk("vda", Some("A"), false), disk("vdb", Some("A"), false)];
        assert!(auto_target(&same, Some("A")).unwrap_err().to_string().contains("ambiguous"));
        assert!(auto_target(&[], None).is_err());
    }
}
