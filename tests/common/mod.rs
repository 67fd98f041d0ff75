//! Helpers shared by the black-box tests: the real binary, scratch directories, loop devices.
#![allow(dead_code)] // Each test binary uses a different subset of these helpers.

pub mod httpd;
pub mod nginx;
pub mod registry;
pub mod token;
pub mod webdriver;
pub mod webserver;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `bty` binary cargo built for this test run, or `BTY_TEST_BIN` when set (to run a test
/// against another build, e.g. an older one to see it fail, or for `make bench`).
pub fn bty_path() -> PathBuf {
    std::env::var_os("BTY_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_bty")))
}

/// A `Command` for the real binary with a clean, predictable environment.
pub fn bty() -> Command {
    let mut cmd = Command::new(bty_path());
    cmd.env_remove("BTY_LOG").env("NO_COLOR", "1");
    cmd
}

/// Runs `bty ARGS...` and returns its output.
pub fn run(args: &[&str]) -> Output {
    bty().args(args).output().expect("running bty")
}

/// stdout and stderr of an output as text, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Percent-encodes a URL path segment or query value: everything but RFC 3986 unreserved
/// characters.
pub fn enc(s: &str) -> String {
    const UNRESERVED: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

/// A scratch directory removed when dropped.
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("bty-test-").tempdir().expect("creating scratch dir")
}

/// Whether this process may attach loop devices (root with /dev/loop-control).
pub fn can_use_loop_devices() -> bool {
    Path::new("/dev/loop-control").exists() && rustix_is_root()
}

fn rustix_is_root() -> bool {
    // SAFETY-free check: /proc/self/status lists the effective uid on the Uid line.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// A loop device attached to a backing file, detached when dropped.
pub struct LoopDevice {
    pub path: PathBuf,
}

impl LoopDevice {
    /// Attaches `backing` with `losetup --find --show`.
    pub fn attach(backing: &Path) -> LoopDevice {
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(backing)
            .output()
            .expect("running losetup");
        assert!(out.status.success(), "losetup failed: {}", text(&out));
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        LoopDevice { path }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.path).status();
    }
}

/// The sha256 of a file (or a block device) as hex, computed with `sha256sum`, not with bty.
pub fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().expect("running sha256sum");
    assert!(out.status.success(), "sha256sum failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

/// The sha256 of the first `len` bytes of a file or device, via `head -c | sha256sum`.
pub fn sha256_prefix(path: &Path, len: u64) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("head -c {len} '{}' | sha256sum", path.display()))
        .output()
        .expect("running head | sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}
