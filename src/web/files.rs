//! Files over HTTP: strict names, ranged and conditional downloads streamed from disk, and
//! uploads streamed to a hidden temporary file that becomes visible only by an atomic rename.
//!
//! Nothing here reads a whole file into memory. A shutdown aborts an upload in progress and its
//! temporary file is removed (leftovers of a crash are removed at the next start), so a client
//! never sees a partial file under the final name.

use super::request::Request;
use super::response::{Body, HttpError, Reply, Response};
use crate::source::hex;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Upload copy buffer: large, so a fast client is not throttled by syscall count.
const COPY_BUF: usize = 1 << 20;

/// Prefix of temporary upload names (`.partial-RANDOM.NAME`: hidden, and still ending in the
/// final name so format detection by extension works before the rename).
const PARTIAL: &str = ".partial-";

/// Checks that `name` is a plain file name: no `/`, `\`, NUL, not `.`/`..`, not hidden, not
/// empty, at most 255 bytes.
pub fn valid_basename(name: &str) -> Result<&str, HttpError> {
    let bad = name.is_empty()
        || name.len() > 255
        || name.starts_with('.')
        || name.contains(['/', '\\', '\0'])
        || name.chars().any(char::is_control);
    if bad {
        return Err(HttpError::bad_request(format!("invalid file name: {name:?}")));
    }
    Ok(name)
}

/// The file `name` in `dir` for a download: a plain name (see [`valid_basename`]) whose file,
/// with symlinks followed, is still inside `dir`; a link out of it is refused with 400, as the
/// reference does. A missing file is left for [`serve`] to answer 404.
pub fn inside(dir: &Path, name: &str) -> Result<PathBuf, HttpError> {
    let name = valid_basename(name)?;
    let Ok(real) = std::fs::canonicalize(dir.join(name)) else {
        return Ok(dir.join(name));
    };
    let root = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if !real.starts_with(&root) {
        return Err(HttpError::bad_request(format!(
            "invalid name {name:?}: resolves outside the allowed directory"
        )));
    }
    Ok(real)
}

/// A `Content-Disposition: attachment` header for `name` (RFC 6266): a quoted ASCII fallback
/// (`"` and `\` escaped, anything else outside printable ASCII as `_`) and the exact name as
/// `filename*=UTF-8''…` (RFC 8187), which current browsers prefer; a name of only RFC 8187
/// attribute characters needs neither and is sent as `filename="NAME"`.
pub fn attachment(name: &str) -> (String, String) {
    // RFC 8187 attr-char: what may stand unencoded in `filename*`.
    const ATTR_CHAR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'!')
        .remove(b'#')
        .remove(b'$')
        .remove(b'&')
        .remove(b'+')
        .remove(b'-')
        .remove(b'.')
        .remove(b'^')
        .remove(b'_')
        .remove(b'`')
        .remove(b'|')
        .remove(b'~');
    let exact = percent_encoding::utf8_percent_encode(name, ATTR_CHAR).to_string();
    // A name that needs no encoding gets the plain form alone, byte for byte what the reference
    // (Starlette's FileResponse) sends.
    if exact == name {
        return ("Content-Disposition".to_string(), format!("attachment; filename=\"{name}\""));
    }
    let fallback: String = name
        .chars()
        .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '_' })
        .flat_map(|c| if c == '"' || c == '\\' { vec!['\\', c] } else { vec![c] })
        .collect();
    (
        "Content-Disposition".to_string(),
        format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{exact}"),
    )
}

/// Removes temporary uploads left by a crash.
pub fn remove_partials(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(PARTIAL) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// A byte range resolved against a file length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeReq {
    /// No (usable) `Range`: the whole file.
    Full,
    /// `start..=end`.
    Part(u64, u64),
    /// Not satisfiable: 416.
    Unsatisfiable,
}

/// Parses a single `bytes=` range (multiple ranges are served whole, as RFC 9110 allows).
pub fn parse_range(header: Option<&str>, len: u64) -> RangeReq {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeReq::Full;
    };
    if spec.contains(',') {
        return RangeReq::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeReq::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(start), Ok(end)) if start <= end => Some((start, end.min(len.saturating_sub(1)))),
        (Ok(start), Err(_)) if b.is_empty() => Some((start, len.saturating_sub(1))),
        (Err(_), Ok(n)) if a.is_empty() && n > 0 => Some((len.saturating_sub(n), len.saturating_sub(1))),
        _ => return RangeReq::Full,
    };
    match parsed {
        Some((start, end)) if start < len && start <= end => RangeReq::Part(start, end),
        _ => RangeReq::Unsatisfiable,
    }
}

/// Serves a file with `Range`, `ETag`/`If-None-Match`, `If-Range` and `Content-Length`;
/// `etag` overrides the size+mtime tag (stored images use their sha256).
pub fn serve(req: &Request<'_>, path: &Path, etag: Option<String>, extra: Vec<(String, String)>) -> Reply {
    let file = File::open(path).map_err(|_| HttpError::not_found("not found"))?;
    let meta = file.metadata().map_err(|e| HttpError::internal(format!("stat: {e}")))?;
    if !meta.is_file() {
        return Err(HttpError::not_found("not found"));
    }
    let len = meta.len();
    let mtime = meta.modified().ok();
    let etag = etag.unwrap_or_else(|| {
        let nanos = mtime
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("\"{len:x}-{nanos:x}\"")
    });
    let mut headers: Vec<(String, String)> = vec![
        ("Accept-Ranges".into(), "bytes".into()),
        ("ETag".into(), etag.clone()),
        ("Content-Type".into(), "application/octet-stream".into()),
    ];
    if let Some(m) = mtime {
        headers.push(("Last-Modified".into(), httpdate::fmt_http_date(m)));
    }
    headers.extend(extra);
    if req.header("if-none-match").is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return Ok(Response { status: 304, headers, body: Body::Empty });
    }
    let range_header = match req.header("if-range") {
        Some(tag) if tag.trim() != etag => None,
        _ => req.header("range"),
    };
    match parse_range(range_header, len) {
        RangeReq::Full => Ok(Response { status: 200, headers, body: Body::File { file, offset: 0, len } }),
        RangeReq::Part(start, end) => {
            headers.push(("Content-Range".into(), format!("bytes {start}-{end}/{len}")));
            Ok(Response {
                status: 206,
                headers,
                body: Body::File { file, offset: start, len: end - start + 1 },
            })
        }
        RangeReq::Unsatisfiable => {
            let mut e = HttpError::new(416, "range not satisfiable");
            e.headers.push(("Content-Range".into(), format!("bytes */{len}")));
            Err(e)
        }
    }
}

/// An upload received into a hidden temporary file; dropped without [`Partial::commit`] it is
/// removed.
pub struct Partial {
    path: PathBuf,
    /// Bytes received.
    pub size: u64,
    /// sha256 of the bytes, hex.
    pub sha256: String,
    committed: bool,
}

impl Partial {
    /// The temporary file (to inspect before committing).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the upload visible under `dest` (atomic rename, replacing).
    pub fn commit(mut self, dest: &Path) -> Result<(), HttpError> {
        std::fs::rename(&self.path, dest)
            .map_err(|e| HttpError::internal(format!("renaming upload: {e}")))?;
        self.committed = true;
        Ok(())
    }

    /// Makes the upload visible under `dest` only if nothing is there yet, atomically, so two
    /// uploads of one name cannot replace each other's bytes; `Ok(false)` when `dest` exists.
    pub fn commit_new(mut self, dest: &Path) -> Result<bool, HttpError> {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        let result = match renameat_with(CWD, &self.path, CWD, dest, RenameFlags::NOREPLACE) {
            // A filesystem without it: a hard link fails on an existing name just as atomically.
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
                std::fs::hard_link(&self.path, dest).and_then(|()| std::fs::remove_file(&self.path))
            }
            other => other.map_err(std::io::Error::from),
        };
        match result {
            Ok(()) => {
                self.committed = true;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(HttpError::internal(format!("renaming upload: {e}"))),
        }
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `.partial-SUFFIX.NAME`, with as much of the end of `name` as fits in NAME_MAX (255 bytes), so
/// a name of any allowed length can be uploaded and the extension still names the format.
fn partial_name(suffix: &str, name: &str) -> String {
    let room = 255 - PARTIAL.len() - suffix.len() - 1;
    let mut start = name.len().saturating_sub(room);
    while !name.is_char_boundary(start) {
        start += 1;
    }
    format!("{PARTIAL}{suffix}.{}", &name[start..])
}

/// Streams the request body into a temporary file in `dir`, hashing as it goes; 413 past
/// `limit`, 503 when shutdown begins mid-upload.
pub fn receive(
    req: &Request<'_>,
    dir: &Path,
    name: &str,
    limit: u64,
    shutdown: &AtomicBool,
) -> Result<Partial, HttpError> {
    if req.body_len.is_some_and(|n| n > limit) {
        return Err(HttpError::too_large(limit));
    }
    let mut body = req.take_body()?;
    let partial = receive_from(&mut body, dir, name, limit, shutdown, &|_| {})?;
    if req.body_len.is_some_and(|n| n != partial.size) {
        return Err(HttpError::bad_request("upload ended before Content-Length bytes arrived"));
    }
    Ok(partial)
}

/// Copies `src` into a temporary file in `dir` (see [`receive`]); `progress` sees the running
/// byte count after each chunk.
pub fn receive_from(
    src: &mut dyn Read,
    dir: &Path,
    name: &str,
    limit: u64,
    shutdown: &AtomicBool,
    progress: &dyn Fn(u64),
) -> Result<Partial, HttpError> {
    let suffix = super::auth::random_hex(6).map_err(HttpError::from)?;
    let path = dir.join(partial_name(&suffix, name));
    // The message names the upload, never the state directory or the temporary name; the log
    // has the full path for the operator.
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&path).map_err(|e| {
        crate::log_warn!("creating {}: {e}", path.display());
        HttpError::internal(format!("cannot store {name} on the server: {e}"))
    })?;
    let mut partial = Partial { path, size: 0, sha256: String::new(), committed: false };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; COPY_BUF];
    loop {
        if shutdown.load(Ordering::Relaxed) {
            return Err(HttpError::new(503, "server is shutting down; transfer aborted"));
        }
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(HttpError::bad_request(format!("reading {name}: {e}"))),
        };
        partial.size += n as u64;
        if partial.size > limit {
            return Err(HttpError::too_large(limit));
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(|e| HttpError::internal(format!("writing {name}: {e}")))?;
        progress(partial.size);
    }
    file.sync_all().map_err(|e| HttpError::internal(format!("syncing {name}: {e}")))?;
    partial.sha256 = hex(&hasher.finalize());
    Ok(partial)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basenames_refuse_traversal_and_separators() {
        for bad in ["", ".", "..", "../x", "a/b", "a\\b", ".hidden", "a\0b", "a\nb"] {
            assert!(valid_basename(bad).is_err(), "{bad:?}");
        }
        for good in ["ipxe.efi", "bty-netboot-x86_64.vmlinuz", "debian 12.img.zst"] {
            assert!(valid_basename(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn partial_names_fit_name_max_and_keep_the_extension() {
        let long = format!("{}é.img.zst", "a".repeat(250));
        let p = partial_name("0123456789ab", &long);
        assert!(p.len() <= 255 && p.starts_with(".partial-0123456789ab.") && p.ends_with("é.img.zst"), "{p}");
        assert_eq!(partial_name("0123456789ab", "x.img"), ".partial-0123456789ab.x.img");
    }

    #[test]
    fn ranges_resolve_like_rfc_9110() {
        let cases = [
            (None, RangeReq::Full),
            (Some("bytes=0-9"), RangeReq::Part(0, 9)),
            (Some("bytes=90-"), RangeReq::Part(90, 99)),
            (Some("bytes=-10"), RangeReq::Part(90, 99)),
            (Some("bytes=95-200"), RangeReq::Part(95, 99)),
            (Some("bytes=100-"), RangeReq::Unsatisfiable),
            (Some("bytes=5-1"), RangeReq::Full),
            (Some("bytes=0-1,5-6"), RangeReq::Full),
            (Some("items=0-1"), RangeReq::Full),
        ];
        for (h, want) in cases {
            assert_eq!(parse_range(h, 100), want, "{h:?}");
        }
    }

    #[test]
    fn upload_is_invisible_until_commit_and_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let stop = AtomicBool::new(false);
        let req = Request::fake("PUT", "/boot/x").with_body(b"hello".to_vec());
        let p = receive(&req, dir.path(), "x", 100, &stop).unwrap();
        assert_eq!(p.sha256, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        assert!(!dir.path().join("x").exists());
        p.commit(&dir.path().join("x")).unwrap();
        assert_eq!(std::fs::read(dir.path().join("x")).unwrap(), b"hello");
        let req = Request::fake("PUT", "/boot/y").with_body(vec![0; 200]);
        assert_eq!(receive(&req, dir.path(), "y", 100, &stop).err().unwrap().status, 413);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["x"]);
        // A commit that must not replace leaves the existing bytes and removes its own.
        let req = Request::fake("PUT", "/images/x").with_body(b"other".to_vec());
        let p = receive(&req, dir.path(), "x", 100, &stop).unwrap();
        assert!(!p.commit_new(&dir.path().join("x")).unwrap(), "replaced an existing file");
        assert_eq!(std::fs::read(dir.path().join("x")).unwrap(), b"hello");
        let req = Request::fake("PUT", "/images/z").with_body(b"new".to_vec());
        assert!(receive(&req, dir.path(), "z", 100, &stop)
            .unwrap()
            .commit_new(&dir.path().join("z"))
            .unwrap());
        let mut names: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, ["x", "z"]);
    }
}
