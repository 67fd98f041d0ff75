//! The wizard on a real pseudo-terminal: the binary runs inside tmux (its own server per test),
//! keys go in with `send-keys`, the screen comes back with `capture-pane`. The image root holds
//! test images and a loop device is the only disk offered (`--disk`), so a whole flash can be
//! checked byte for byte. The pane's shell records `stty -a` before and after the wizard, so
//! every test also checks the terminal settings come back unchanged.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a screen may take to appear before the test gives up (a hang guard, not a timing
/// assertion: a loaded machine only makes the test slower).
const PATIENCE: Duration = Duration::from_secs(60);

/// One tmux server with one pane running `bty ARGS`, torn down on drop.
struct Pane {
    socket: String,
    dir: tempfile::TempDir,
}

impl Pane {
    /// Starts `bty ARGS` in a `cols`×`rows` pane with `env` set, after recording `stty -a`.
    fn start(cols: u16, rows: u16, env: &[(&str, String)], args: &[&str]) -> Pane {
        Pane::launch(cols, rows, "", env, args)
    }

    /// Like [`Pane::start`], on a terminal that reports no window size, as a serial line does.
    fn start_serial(env: &[(&str, String)], args: &[&str]) -> Pane {
        Pane::launch(80, 24, "stty rows 0 cols 0;", env, args)
    }

    fn launch(cols: u16, rows: u16, prelude: &str, env: &[(&str, String)], args: &[&str]) -> Pane {
        let dir = scratch();
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let socket = format!("bty-tui-test-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let mut command = String::from("env -i PATH=\"$PATH\"");
        for (k, v) in env {
            command += &format!(" {k}='{v}'");
        }
        command += &format!(" '{}'", bty_path().display());
        for a in args {
            command += &format!(" '{a}'");
        }
        let d = dir.path().display();
        // `raw` keeps every byte the wizard wrote (through tee), for the dumb-terminal checks.
        let script = format!(
            "{prelude} stty -a > {d}/before; {command} | tee {d}/raw; echo ${{PIPESTATUS[0]}} > {d}/exit; \
             stty -a > {d}/after; sleep 600"
        );
        let status = tmux(&socket)
            .args([
                "new-session",
                "-d",
                "-x",
                &cols.to_string(),
                "-y",
                &rows.to_string(),
                "bash",
                "-c",
                &script,
            ])
            .status()
            .expect("starting tmux");
        assert!(status.success(), "tmux new-session failed");
        Pane { socket, dir }
    }

    /// Sends tmux key names (`Enter`, `Down`, `Escape`, `C-c`, or literal text for single chars).
    fn keys(&self, keys: &[&str]) {
        let status =
            tmux(&self.socket).args(["send-keys", "-t", "0"]).args(keys).status().expect("tmux send-keys");
        assert!(status.success());
    }

    /// Types `text` literally (no key-name interpretation).
    fn type_text(&self, text: &str) {
        let status =
            tmux(&self.socket).args(["send-keys", "-t", "0", "-l", text]).status().expect("tmux send-keys");
        assert!(status.success());
    }

    fn screen(&self) -> String {
        let out =
            tmux(&self.socket).args(["capture-pane", "-p", "-t", "0"]).output().expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows `text`; returns the screen.
    fn wait_for(&self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(start.elapsed() < PATIENCE, "waited for {text:?}; the screen shows:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the wizard to exit; returns its exit code.
    fn wait_exit(&self) -> i32 {
        let path = self.dir.path().join("after");
        let start = Instant::now();
        while !path.exists() || std::fs::read_to_string(&path).unwrap_or_default().is_empty() {
            assert!(
                start.elapsed() < PATIENCE,
                "the wizard did not exit; the screen shows:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self.file("exit").trim().parse().unwrap_or(-1)
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// `stty -a` from before and after the wizard ran in this pane.
    fn stty_before_and_after(&self) -> (String, String) {
        (self.file("before"), self.file("after"))
    }

    /// The pid of the wizard: the child of the pane's shell that runs the bty binary.
    fn wizard_pid(&self) -> u32 {
        let out =
            tmux(&self.socket).args(["display-message", "-p", "-t", "0", "#{pane_pid}"]).output().unwrap();
        let shell: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().expect("pane pid");
        let children =
            std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).unwrap_or_default();
        children
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
            .find(|p| std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|exe| exe == bty_path()))
            .expect("the wizard's pid")
    }

    fn resize(&self, cols: u16, rows: u16) {
        let status = tmux(&self.socket)
            .args(["resize-window", "-t", "0", "-x", &cols.to_string(), "-y", &rows.to_string()])
            .status()
            .expect("tmux resize-window");
        assert!(status.success());
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = tmux(&self.socket).arg("kill-server").status();
    }
}

fn tmux(socket: &str) -> Command {
    let mut c = Command::new("tmux");
    c.args(["-L", socket, "-f", "/dev/null"]);
    c
}

/// An image root with a random raw image of `size` bytes named `name`.
fn image_root(name: &str, size: usize) -> (tempfile::TempDir, PathBuf) {
    let dir = scratch();
    let path = dir.path().join(name);
    let mut bytes = vec![0u8; size];
    let mut urandom = std::fs::File::open("/dev/urandom").unwrap();
    urandom.read_exact(&mut bytes).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    (dir, path)
}

/// A loop device over a file of `size` bytes of random data (so it "holds data").
fn loop_disk(dir: &Path, size: usize) -> LoopDevice {
    let backing = dir.join("disk.bin");
    let mut bytes = vec![0u8; size];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut bytes).unwrap();
    std::fs::write(&backing, &bytes).unwrap();
    LoopDevice::attach(&backing)
}

macro_rules! need_loop_and_tmux {
    () => {
        if !can_use_loop_devices() || Command::new("tmux").arg("-V").output().is_err() {
            eprintln!("skipped: needs root, loop devices and tmux");
            return;
        }
    };
}

const XTERM_ASCII: [(&str, &str); 2] = [("TERM", "xterm"), ("LANG", "C")];

/// The environment for a pane: `vars` plus `BTY_IMAGE_ROOT` pointing at `root`.
fn env_with_root(root: &Path, vars: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = vars.iter().map(|(k, v)| (*k, v.to_string())).collect();
    env.push(("BTY_IMAGE_ROOT", root.display().to_string()));
    env
}

#[test]
fn picks_confirms_and_flashes_the_image_onto_the_loop_device() {
    need_loop_and_tmux!();
    let (root, image) = image_root("test-x86_64.img", 4 << 20);
    // A sidecar digest makes the flash check the source against it.
    std::fs::write(
        root.path().join("test-x86_64.img.sha256"),
        format!("{}  test-x86_64.img\n", sha256sum(&image)),
    )
    .unwrap();
    let scratch_dir = scratch();
    let disk = loop_disk(scratch_dir.path(), 4 << 20);
    let dev = disk.path.display().to_string();
    let env = env_with_root(root.path(), &XTERM_ASCII);
    let pane = Pane::start(80, 24, &env, &["tui", "--disk", &dev]);

    let s = pane.wait_for("test-x86_64.img");
    assert!(s.contains("Pick an image to flash") && s.contains("4.0 MiB") && s.contains("x86_64"), "{s}");
    assert!(s.contains("> 1  test-x86_64.img"), "{s}");
    pane.keys(&["1", "Enter"]);

    let s = pane.wait_for(&dev);
    assert!(s.contains("Pick a target disk") && s.contains("loop"), "{s}");
    pane.keys(&["Enter"]);

    let s = pane.wait_for("Type yes");
    assert!(s.contains("Confirm the flash") && s.contains("first MiB holds data") && s.contains(&dev), "{s}");
    assert!(s.contains("Verify  off"), "{s}");
    pane.keys(&["v"]);
    pane.wait_for("Verify  on: read the disk back");
    // A bare y is not enough for a disk that holds data.
    pane.keys(&["y", "Enter"]);
    let s = pane.wait_for("type yes and press Enter to erase");
    assert!(s.contains("Confirm the flash"), "{s}");
    pane.type_text("yes");
    pane.wait_for("Confirm: yes");
    pane.keys(&["Enter"]);

    let s = pane.wait_for("Flash complete");
    assert!(s.contains(&format!("test-x86_64.img is on {dev}")) && s.contains("Reboot now"), "{s}");
    assert!(s.contains("Digest: the source matches its published sha256"), "{s}");
    assert!(s.contains("Read-back verify: the disk matches the image"), "{s}");
    assert_eq!(sha256sum(&disk.path), sha256sum(&image));
    pane.keys(&["q"]);
    assert_eq!(pane.wait_exit(), 0);
    let (before, after) = pane.stty_before_and_after();
    assert!(!before.is_empty());
    assert_eq!(before, after);
}

#[test]
fn refused_disks_are_greyed_with_the_reason_and_cannot_be_picked() {
    need_loop_and_tmux!();
    // An image larger than the disk makes the disk fail the size rule.
    let (root, _) = image_root("big.img", 8 << 20);
    let scratch_dir = scratch();
    let disk = loop_disk(scratch_dir.path(), 4 << 20);
    let dev = disk.path.display().to_string();
    let env = env_with_root(root.path(), &XTERM_ASCII);
    let pane = Pane::start(80, 24, &env, &["tui", "--disk", &dev]);
    pane.wait_for("big.img");
    pane.keys(&["Enter"]);
    let s = pane.wait_for("cannot use:");
    assert!(s.contains(&dev), "{s}");
    pane.keys(&["1", "Enter"]);
    let s = pane.wait_for("cannot be used");
    assert!(s.contains("Pick a target disk"), "{s}");
    pane.keys(&["q"]);
    assert_eq!(pane.wait_exit(), 0);
}

#[test]
fn narrow_40x12_and_wide_200x60_terminals_adapt_and_follow_resizes() {
    need_loop_and_tmux!();
    let (root, _) = image_root("debian-12-generic-amd64.img", 1 << 20);
    let env = env_with_root(root.path(), &XTERM_ASCII);

    let wide = Pane::start(200, 60, &env, &["tui"]);
    let s = wide.wait_for("debian-12-generic-amd64.img");
    assert!(s.contains("Format") && s.contains("Arch") && s.contains("From") && s.contains("local"), "{s}");
    assert!(s.contains("1.Source > [2.Image] > 3.Disk"), "{s}");
    wide.keys(&["q"]);
    assert_eq!(wide.wait_exit(), 0);

    let narrow = Pane::start(40, 12, &env, &["tui"]);
    let s = narrow.wait_for("debian-12");
    assert!(s.lines().all(|l| l.chars().count() <= 40), "{s}");
    assert!(!s.contains("From"), "{s}");
    assert!(s.lines().last().is_some_and(|l| l.starts_with('>')) || s.contains("\n>"), "{s}");
    // SIGWINCH: growing the window brings the columns back.
    narrow.resize(120, 30);
    let s = narrow.wait_for("From");
    assert!(s.contains("Format"), "{s}");
    // Tiny windows never crash it.
    narrow.resize(10, 3);
    std::thread::sleep(Duration::from_millis(300));
    narrow.resize(80, 24);
    narrow.wait_for("debian-12-generic-amd64.img");
    narrow.keys(&["q"]);
    assert_eq!(narrow.wait_exit(), 0);
    let (before, after) = narrow.stty_before_and_after();
    // The window size is part of `stty -a`; everything else must match.
    let settings = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(settings(&before), settings(&after));
}

#[test]
fn dumb_terminal_gets_plain_numbered_lines_and_works_by_typing_numbers() {
    need_loop_and_tmux!();
    let (root, image) = image_root("plain.img", 2 << 20);
    let scratch_dir = scratch();
    let disk = loop_disk(scratch_dir.path(), 2 << 20);
    let dev = disk.path.display().to_string();
    let env = env_with_root(root.path(), &[("TERM", "dumb"), ("LANG", "C")]);
    let pane = Pane::start(80, 24, &env, &["tui", "--disk", &dev]);
    let s = pane.wait_for("plain.img");
    assert!(s.contains("type 1-1 and Enter to pick"), "{s}");
    pane.keys(&["1", "Enter"]);
    pane.wait_for(&dev);
    pane.keys(&["1", "Enter"]);
    pane.wait_for("Type yes");
    pane.keys(&["y", "e", "s", "Enter"]);
    pane.wait_for("Flash complete");
    assert_eq!(sha256sum(&disk.path), sha256sum(&image));
    pane.keys(&["3", "Enter"]);
    assert_eq!(pane.wait_exit(), 0);
    let raw = pane.file("raw");
    assert!(!raw.contains('\x1b'), "escape sequences on a dumb terminal: {raw:?}");
    assert!(raw.contains("> 1  plain.img") && raw.contains("3  Quit"), "{raw}");
    let (before, after) = pane.stty_before_and_after();
    assert_eq!(before, after);
}

#[test]
fn a_typed_catalog_url_that_fails_to_load_says_why_and_the_wizard_stays_usable() {
    need_loop_and_tmux!();
    // A loopback HTTP server that answers 404 to everything.
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in server.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ =
                conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    let (root, _) = image_root("local.img", 1 << 20);
    let env = env_with_root(root.path(), &XTERM_ASCII);
    let pane = Pane::start(80, 24, &env, &["tui"]);
    pane.wait_for("local.img");
    pane.keys(&["b"]);
    pane.wait_for("Pick an image source");
    pane.keys(&["3", "Enter"]);
    pane.wait_for("Catalog path or URL:");
    let url = format!("http://127.0.0.1:{port}/catalog.toml");
    pane.type_text(&url);
    pane.keys(&["Enter"]);
    let s = pane.wait_for("404");
    assert!(s.contains("Pick an image source") && s.contains(&format!("127.0.0.1:{port}")), "{s}");
    // Still usable: the local image root loads.
    pane.keys(&["1", "Enter"]);
    pane.wait_for("> 1  local.img");
    pane.keys(&["q"]);
    assert_eq!(pane.wait_exit(), 0);
}

#[test]
fn sigterm_restores_the_terminal_and_exits_130() {
    need_loop_and_tmux!();
    let (root, _) = image_root("x.img", 1 << 20);
    let env = env_with_root(root.path(), &XTERM_ASCII);
    let pane = Pane::start(80, 24, &env, &["tui"]);
    pane.wait_for("x.img");
    let pid = pane.wizard_pid();
    let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(status.success());
    assert_eq!(pane.wait_exit(), 130);
    let (before, after) = pane.stty_before_and_after();
    assert_eq!(before, after);
}

#[test]
fn help_and_back_work_from_the_keyboard() {
    need_loop_and_tmux!();
    let (root, _) = image_root("x.img", 1 << 20);
    let env = env_with_root(root.path(), &[("TERM", "xterm"), ("LANG", "C.UTF-8")]);
    let pane = Pane::start(80, 24, &env, &["tui"]);
    pane.wait_for("x.img");
    pane.keys(&["?"]);
    let s = pane.wait_for("any key closes this help");
    assert!(s.contains("Ctrl+C") && s.contains("Esc or b"), "{s}");
    pane.keys(&["Space"]);
    pane.wait_for("▶ 1  x.img");
    pane.keys(&["Escape"]);
    pane.wait_for("Pick an image source");
    pane.keys(&["q"]);
    assert_eq!(pane.wait_exit(), 0);
}

#[test]
fn without_a_terminal_on_stdin_it_refuses_with_exit_2() {
    let out = bty().arg("tui").stdin(std::process::Stdio::null()).output().expect("running bty tui");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a terminal"), "{}", text(&out));
}

#[test]
fn colour_unicode_ascii_and_no_color_follow_the_environment() {
    need_loop_and_tmux!();
    let (root, _) = image_root("x.img", 1 << 20);
    let red = "\x1b[0;1;31m";

    let fancy =
        Pane::start(80, 24, &env_with_root(root.path(), &[("TERM", "xterm"), ("LANG", "C.UTF-8")]), &["tui"]);
    fancy.wait_for("x.img");
    fancy.keys(&["7"]);
    let s = fancy.wait_for("7 is out of range");
    assert!(s.contains("▶ 1  x.img") && s.contains("↑↓ move"), "{s}");
    fancy.keys(&["q"]);
    assert_eq!(fancy.wait_exit(), 0);
    assert!(fancy.file("raw").contains(red), "the error is not red");

    // The Linux VT gets ASCII even with a UTF-8 locale, and NO_COLOR keeps colour away.
    let env = env_with_root(root.path(), &[("TERM", "linux"), ("LANG", "C.UTF-8"), ("NO_COLOR", "1")]);
    let plain = Pane::start(80, 24, &env, &["tui"]);
    plain.wait_for("x.img");
    plain.keys(&["7"]);
    let s = plain.wait_for("7 is out of range");
    assert!(s.is_ascii() && s.contains("> 1  x.img") && s.contains("Up/Dn move"), "{s}");
    plain.keys(&["q"]);
    assert_eq!(plain.wait_exit(), 0);
    let raw = plain.file("raw");
    assert!(raw.is_ascii(), "non-ASCII bytes on an ASCII terminal");
    assert!(!raw.contains(red) && !raw.contains(";31m") && !raw.contains("[0;2m"), "colour despite NO_COLOR");
}

/// A loopback HTTP server offering `/catalog.toml` with one image, `/slow.img`, whose bytes
/// arrive at a trickle: slow enough that a flash of it is still running when the test acts.
fn trickle_server(image_len: u64) -> u16 {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let catalog = format!(
        "version = 1\n[[images]]\nname = \"slow.img\"\nsrc = \"http://127.0.0.1:{port}/slow.img\"\nsize_bytes = {image_len}\n"
    );
    std::thread::spawn(move || {
        for conn in server.incoming().flatten() {
            let catalog = catalog.clone();
            std::thread::spawn(move || serve_one(conn, &catalog, image_len));
        }
    });
    port
}

fn serve_one(mut conn: std::net::TcpStream, catalog: &str, image_len: u64) {
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") && conn.read(&mut byte).is_ok_and(|n| n == 1) {
        request.push(byte[0]);
    }
    let request = String::from_utf8_lossy(&request);
    if request.starts_with("GET /catalog.toml") {
        let head =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", catalog.len());
        let _ = conn.write_all(head.as_bytes()).and_then(|()| conn.write_all(catalog.as_bytes()));
        return;
    }
    // The whole image (no Range support), 64 KiB every 20 ms, until the client hangs up.
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {image_len}\r\nConnection: close\r\n\r\n");
    if conn.write_all(head.as_bytes()).is_err() {
        return;
    }
    let chunk: Vec<u8> =
        (0..65536u32).map(|i| (i.wrapping_mul(7).wrapping_add(13) % 251) as u8 + 1).collect();
    let mut sent = 0u64;
    while sent < image_len {
        let n = chunk.len().min((image_len - sent) as usize);
        if conn.write_all(&chunk[..n]).is_err() {
            return;
        }
        sent += n as u64;
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A flash running from a catalog URL on a [`trickle_server`] onto a zeroed loop device; field
/// order makes the pane (and the wizard) go before the loop device.
struct SlowFlash {
    pane: Pane,
    dev: String,
    _disk: LoopDevice,
    _dirs: [tempfile::TempDir; 2],
}

fn slow_flash_running() -> SlowFlash {
    let image_len = 64u64 << 20;
    let port = trickle_server(image_len);
    let empty_root = scratch();
    let disk_dir = scratch();
    let backing = disk_dir.path().join("disk.bin");
    std::fs::File::create(&backing).unwrap().set_len(image_len).unwrap();
    let disk = LoopDevice::attach(&backing);
    let dev = disk.path.display().to_string();
    let catalog = format!("http://127.0.0.1:{port}/catalog.toml");
    let env = env_with_root(empty_root.path(), &XTERM_ASCII);
    let pane = Pane::start(80, 24, &env, &["tui", "--catalog", &catalog, "--disk", &dev]);

    let s = pane.wait_for("slow.img");
    assert!(s.contains("64.0 MiB") && s.contains("127.0.0.1"), "{s}");
    pane.keys(&["Enter"]);
    pane.wait_for(&dev);
    pane.keys(&["Enter"]);
    // A zeroed disk holds nothing: a single y confirms.
    pane.wait_for("Type y and press Enter");
    pane.keys(&["y", "Enter"]);
    let s = pane.wait_for("writing:");
    assert!(s.contains("Flashing") && s.contains("of 64.0 MiB") && s.contains("MB/s"), "{s}");
    SlowFlash { pane, dev, _disk: disk, _dirs: [empty_root, disk_dir] }
}

#[test]
fn ctrl_c_during_a_flash_from_a_catalog_url_asks_then_cancels() {
    need_loop_and_tmux!();
    let SlowFlash { pane, dev, .. } = &slow_flash_running();
    pane.keys(&["C-c"]);
    pane.wait_for("Cancel the flash?");
    // n keeps writing; the second Ctrl+C and y cancel.
    pane.keys(&["n"]);
    let s = pane.wait_for("Ctrl+C cancel");
    assert!(!s.contains("Cancel the flash?"), "{s}");
    pane.keys(&["C-c"]);
    pane.wait_for("Cancel the flash?");
    pane.keys(&["y"]);
    let s = pane.wait_for("Flash cancelled");
    assert!(
        s.contains(&format!("{dev} holds a partial image")) && s.contains("Back to the disk list"),
        "{s}"
    );
    pane.keys(&["q"]);
    assert_eq!(pane.wait_exit(), 0);
    let (before, after) = pane.stty_before_and_after();
    assert_eq!(before, after);
}

#[test]
fn the_front_door_opens_the_wizard_with_no_arguments_and_with_a_catalog() {
    need_loop_and_tmux!();
    let (root, _) = image_root("local.img", 1 << 20);
    let env = env_with_root(root.path(), &XTERM_ASCII);

    let bare = Pane::start(80, 24, &env, &[]);
    bare.wait_for("> 1  local.img");
    bare.keys(&["q"]);
    assert_eq!(bare.wait_exit(), 0);

    let catalog = root.path().join("catalog.toml");
    let toml = "version = 1\n[[images]]\nname = \"remote.img.zst\"\nsrc = \"https://images.example.org/remote.img.zst\"\n";
    std::fs::write(&catalog, toml).unwrap();
    let with_catalog = Pane::start(80, 24, &env, &["--catalog", &catalog.display().to_string()]);
    let s = with_catalog.wait_for("remote.img.zst");
    // Local images first, then the catalog's, with where each comes from.
    assert!(
        s.contains("1  local.img") && s.contains("2  remote.img.zst") && s.contains("images.example.org"),
        "{s}"
    );
    with_catalog.keys(&["b"]);
    let s = with_catalog.wait_for("Pick an image source");
    assert!(s.contains(&format!("1  Catalog {}", catalog.display())), "{s}");
    with_catalog.keys(&["q"]);
    assert_eq!(with_catalog.wait_exit(), 0);
}

#[test]
fn a_wrong_published_digest_fails_the_flash_and_the_done_screen_says_so() {
    need_loop_and_tmux!();
    let (root, _) = image_root("bad.img", 1 << 20);
    std::fs::write(root.path().join("bad.img.sha256"), format!("{}  bad.img\n", "0".repeat(64))).unwrap();
    let scratch_dir = scratch();
    let disk = loop_disk(scratch_dir.path(), 1 << 20);
    let dev = disk.path.display().to_string();
    let pane = Pane::start(80, 24, &env_with_root(root.path(), &XTERM_ASCII), &["tui", "--disk", &dev]);
    pane.wait_for("bad.img");
    pane.keys(&["Enter"]);
    pane.wait_for(&dev);
    pane.keys(&["Enter"]);
    pane.wait_for("Type yes");
    pane.type_text("yes");
    pane.keys(&["Enter"]);
    let s = pane.wait_for("Flash FAILED");
    assert!(s.contains("sha256") && s.contains("> 2  Back to the disk list"), "{s}");
    // Back goes to the disk list with the same image.
    pane.keys(&["Enter"]);
    let s = pane.wait_for("Pick a target disk");
    assert!(s.contains("Image: bad.img"), "{s}");
    pane.keys(&["q"]);
    assert_eq!(pane.wait_exit(), 0);
}

#[test]
fn on_a_serial_like_line_without_a_size_it_uses_columns_and_lines_and_works_with_digits() {
    need_loop_and_tmux!();
    let (root, _) = image_root("serial-console-image-with-a-long-name.img", 1 << 20);
    let env =
        env_with_root(root.path(), &[("TERM", "vt100"), ("LANG", "C"), ("COLUMNS", "40"), ("LINES", "12")]);
    let pane = Pane::start_serial(&env, &["tui"]);
    let s = pane.wait_for("serial-console");
    // Laid out for 40x12 although the pane is 80 wide: the last row is the prompt on row 12.
    assert!(s.lines().all(|l| l.chars().count() <= 40), "{s}");
    assert_eq!(s.lines().nth(11), Some(">"), "{s}");
    pane.keys(&["1", "Enter"]);
    pane.wait_for("Pick a target disk");
    pane.keys(&["q"]);
    assert_eq!(pane.wait_exit(), 0);
}

#[test]
fn a_disk_filter_that_matches_nothing_says_so() {
    need_loop_and_tmux!();
    let (root, _) = image_root("x.img", 1 << 20);
    let pane = Pane::start(
        80,
        24,
        &env_with_root(root.path(), &XTERM_ASCII),
        &["tui", "--disk", "/dev/no-such-disk"],
    );
    pane.wait_for("x.img");
    pane.keys(&["Enter"]);
    let s = pane.wait_for("no whole disk matches --disk /dev/no-such-disk");
    assert!(s.contains("Pick a target disk") && s.contains("No disks found"), "{s}");
    pane.keys(&["q"]);
    assert_eq!(pane.wait_exit(), 0);
}

#[test]
fn a_hidden_disk_is_never_offered() {
    need_loop_and_tmux!();
    let (root, _) = image_root("x.img", 1 << 20);
    let (dir_a, dir_b) = (scratch(), scratch());
    let (stick, target) = (loop_disk(dir_a.path(), 2 << 20), loop_disk(dir_b.path(), 2 << 20));
    let (stick_dev, target_dev) = (stick.path.display().to_string(), target.path.display().to_string());
    let pane = Pane::start(
        80,
        24,
        &env_with_root(root.path(), &XTERM_ASCII),
        &["tui", "--disk", &stick_dev, "--disk", &target_dev, "--hide-disk", &stick_dev],
    );
    pane.wait_for("x.img");
    pane.keys(&["Enter"]);
    let s = pane.wait_for(&target_dev);
    assert!(!s.contains(&format!("{stick_dev} ")), "the hidden disk is listed: {s}");
    pane.keys(&["q"]);
    assert_eq!(pane.wait_exit(), 0);
}

#[test]
fn sigterm_during_a_flash_cancels_it_restores_the_terminal_and_exits_130() {
    need_loop_and_tmux!();
    let SlowFlash { pane, .. } = &slow_flash_running();
    let pid = pane.wizard_pid();
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    assert_eq!(pane.wait_exit(), 130);
    let (before, after) = pane.stty_before_and_after();
    assert_eq!(before, after);
}
