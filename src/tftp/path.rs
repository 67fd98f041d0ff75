//! Root-confined resolution of requested file names: a TFTP client names a file, and only a
//! regular file inside the server's root may come back, whatever the name or the symlinks in
//! the tree say.
//!
//! The name is cleaned first (one leading `/` dropped, `\` read as `/` because iPXE and some
//! firmware send DOS paths, empty and `.` components skipped, `..` and NUL refused), then opened
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` relative to the root directory, so
//! the kernel refuses any symlink that leads out. Kernels without openat2 (before 5.6, or a
//! seccomp filter that hides it) get a canonicalise-and-prefix check instead, which has a race
//! against someone swapping symlinks inside the root while we look; the root is trusted content,
//! so that fallback is acceptable. This module does not send packets; `server.rs` turns a
//! [`Denied`] into an ERROR.

use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::{Context, Result};

/// Why a requested name yields no file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// Nothing by that name inside the root (ERROR 1).
    NotFound,
    /// The name or what it resolves to is not allowed (ERROR 2), with the reason for the log.
    Forbidden(&'static str),
}

/// Set once openat2 turned out to be missing, so later requests go straight to the fallback.
static OPENAT2_MISSING: AtomicBool = AtomicBool::new(false);

/// The directory files are served from.
pub struct Root {
    dir: OwnedFd,
    canonical: PathBuf,
}

impl Root {
    /// Opens the root directory; fails when it does not exist or is not a directory.
    pub fn open(path: &Path) -> Result<Root> {
        let canonical = std::fs::canonicalize(path)
            .with_context(|| format!("opening TFTP root {}; create it or pass --root", path.display()))?;
        let dir =
            rustix::fs::open(&canonical, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
                .map_err(io::Error::from)
                .with_context(|| format!("opening TFTP root {} as a directory", canonical.display()))?;
        Ok(Root { dir, canonical })
    }

    /// The root's canonical path, for logs.
    pub fn path(&self) -> &Path {
        &self.canonical
    }

    /// Opens the regular file `name` (as sent by a client) inside the root, read-only.
    pub fn open_file(&self, name: &[u8]) -> Result<File, Denied> {
        let relative = clean_name(name)?;
        let file = if OPENAT2_MISSING.load(Ordering::Relaxed) {
            self.open_checked(&relative)?
        } else {
            match self.open_beneath(&relative) {
                Err(Unavailable) => {
                    OPENAT2_MISSING.store(true, Ordering::Relaxed);
                    self.open_checked(&relative)?
                }
                Ok(result) => result?,
            }
        };
        match file.metadata() {
            Ok(meta) if meta.is_file() => Ok(file),
            Ok(_) => Err(Denied::Forbidden("not a regular file")),
            Err(_) => Err(Denied::Forbidden("cannot stat the file")),
        }
    }

    /// The kernel-enforced way: openat2 refuses `..` and symlinks that leave the root.
    fn open_beneath(&self, relative: &Path) -> Result<Result<File, Denied>, Unavailable> {
        // O_NONBLOCK keeps a FIFO in the root from hanging the transfer thread in open(); it
        // has no effect on reading regular files.
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(&self.dir, relative, flags, Mode::empty(), resolve) {
            Ok(fd) => Ok(Ok(File::from(fd))),
            Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => Err(Unavailable),
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => Ok(Err(Denied::NotFound)),
            Err(rustix::io::Errno::XDEV) => Ok(Err(Denied::Forbidden("resolves outside the root"))),
            Err(rustix::io::Errno::LOOP) => Ok(Err(Denied::Forbidden("too many symlinks"))),
            Err(_) => Ok(Err(Denied::Forbidden("cannot open the file"))),
        }
    }

    /// The fallback without openat2: resolve every symlink, then insist on the root prefix.
    fn open_checked(&self, relative: &Path) -> Result<File, Denied> {
        let resolved = match std::fs::canonicalize(self.canonical.join(relative)) {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Denied::NotFound),
            Err(_) => return Err(Denied::Forbidden("cannot resolve the name")),
        };
        if !resolved.starts_with(&self.canonical) {
            return Err(Denied::Forbidden("resolves outside the root"));
        }
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY).bits() as i32)
            .open(&resolved)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => Denied::NotFound,
                _ => Denied::Forbidden("cannot open the file"),
            })
    }
}

/// openat2 is not available on this kernel.
struct Unavailable;

/// Turns a requested name into a relative path with only normal components.
pub fn clean_name(name: &[u8]) -> Result<PathBuf, Denied> {
    if name.contains(&0) {
        return Err(Denied::Forbidden("NUL in the name"));
    }
    let slashed: Vec<u8> = name.iter().map(|&b| if b == b'\\' { b'/' } else { b }).collect();
    let trimmed = slashed.strip_prefix(b"/").unwrap_or(&slashed);
    let mut relative = PathBuf::new();
    for component in Path::new(std::ffi::OsStr::from_bytes(trimmed)).components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(Denied::Forbidden("'..' in the name")),
            // A second leading slash: the name was absolute after all.
            Component::RootDir | Component::Prefix(_) => return Err(Denied::Forbidden("absolute name")),
        }
    }
    if relative.as_os_str().is_empty() {
        return Err(Denied::Forbidden("no file name"));
    }
    Ok(relative)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("efi/boot")).unwrap();
        std::fs::write(root.join("ipxe.efi"), b"ipxe").unwrap();
        std::fs::write(root.join("efi/boot/bootx64.efi"), b"boot").unwrap();
        std::fs::write(dir.path().join("secret"), b"secret").unwrap();
        symlink("../secret", root.join("up")).unwrap();
        symlink("/etc/passwd", root.join("abs")).unwrap();
        symlink("efi/boot/bootx64.efi", root.join("inside")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("fifo"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let root = Root::open(&root).unwrap();
        (dir, root)
    }

    fn read(file: File) -> Vec<u8> {
        let mut v = Vec::new();
        let mut f = file;
        f.read_to_end(&mut v).unwrap();
        v
    }

    #[test]
    fn names_are_cleaned_or_refused() {
        let ok = [
            (&b"ipxe.efi"[..], "ipxe.efi"),
            (b"/ipxe.efi", "ipxe.efi"),
            (b"\\efi\\boot\\bootx64.efi", "efi/boot/bootx64.efi"),
            (b"efi//./boot/x", "efi/boot/x"),
        ];
        for (name, want) in ok {
            assert_eq!(clean_name(name), Ok(PathBuf::from(want)), "{name:?}");
        }
        for bad in [&b"../etc/passwd"[..], b"a/../../b", b"..\\x", b"//etc/passwd", b"/", b"a\0b", b"."] {
            assert!(matches!(clean_name(bad), Err(Denied::Forbidden(_))), "{bad:?}");
        }
    }

    #[test]
    fn files_inside_open_and_escapes_are_refused() {
        let (_dir, root) = tree();
        assert_eq!(read(root.open_file(b"ipxe.efi").unwrap()), b"ipxe");
        assert_eq!(read(root.open_file(b"\\efi\\boot\\bootx64.efi").unwrap()), b"boot");
        assert_eq!(read(root.open_file(b"inside").unwrap()), b"boot");
        assert_eq!(root.open_file(b"missing").unwrap_err(), Denied::NotFound);
        assert_eq!(root.open_file(b"/etc/passwd").unwrap_err(), Denied::NotFound);
        for bad in [&b"up"[..], b"abs", b"../secret", b"efi", b"fifo"] {
            assert!(matches!(root.open_file(bad), Err(Denied::Forbidden(_))), "{bad:?}");
        }
    }

    #[test]
    fn fallback_without_openat2_refuses_the_same_escapes() {
        let (_dir, root) = tree();
        assert_eq!(read(root.open_checked(Path::new("inside")).unwrap()), b"boot");
        assert_eq!(root.open_checked(Path::new("missing")).unwrap_err(), Denied::NotFound);
        for bad in ["up", "abs"] {
            assert!(matches!(root.open_checked(Path::new(bad)), Err(Denied::Forbidden(_))), "{bad}");
        }
    }
}
