//! The netboot artifacts a PXE client needs from this server — the agent's kernel and initrd
//! (HTTP, boot dir) and the iPXE loaders (TFTP root) when bty-web serves TFTP — where each
//! lives, which are missing, and their import from a `SHA256SUMS` manifest as `bty-media`
//! writes it (`HEX  NAME` lines), from a directory or a URL, each file checked against its
//! digest before any is made visible.

use super::context::AppContext;
use super::files;
use super::response::HttpError;
use std::io::Read;
use std::path::PathBuf;

/// The iPXE binaries PXE firmware fetches over TFTP (and UEFI HTTP Boot over HTTP).
pub const LOADERS: [(&str, &str); 3] = [
    ("ipxe.efi", "iPXE for UEFI (client arch 7, 9)"),
    ("snponly.efi", "iPXE for UEFI over the firmware's NIC driver (SNP)"),
    ("undionly.kpxe", "iPXE for BIOS (client arch 0)"),
];

/// Largest manifest read (five lines are a few hundred bytes).
const MANIFEST_CAP: u64 = 64 << 10;

/// One artifact a client needs: file name, what it is, the directory it is served from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needed {
    /// File name.
    pub name: String,
    /// What it is for.
    pub role: String,
    /// Where it must be.
    pub dir: PathBuf,
}

/// The directory TFTP serves (the boot dir unless `[tftp] root` is set).
pub fn tftp_root(ctx: &AppContext) -> PathBuf {
    match ctx.config.tftp.root.trim() {
        "" => ctx.config.paths.boot_dir.clone(),
        r => PathBuf::from(r),
    }
}

/// Every artifact a PXE client needs: kernel and initrd always, the loaders when TFTP is on.
pub fn needed(ctx: &AppContext) -> Vec<Needed> {
    let nb = &ctx.config.netboot;
    let boot = &ctx.config.paths.boot_dir;
    let mut out = vec![
        Needed { name: nb.kernel.clone(), role: "netboot kernel (HTTP)".into(), dir: boot.clone() },
        Needed { name: nb.initrd.clone(), role: "netboot initrd (HTTP)".into(), dir: boot.clone() },
    ];
    if ctx.config.tftp.enabled {
        let root = tftp_root(ctx);
        out.extend(LOADERS.iter().map(|(n, r)| Needed {
            name: n.to_string(),
            role: r.to_string(),
            dir: root.clone(),
        }));
    }
    out
}

/// The names of [`needed`] artifacts that are not regular files where they must be.
pub fn missing(ctx: &AppContext) -> Vec<String> {
    needed(ctx).into_iter().filter(|n| !n.dir.join(&n.name).is_file()).map(|n| n.name).collect()
}

/// `HEX  NAME` (or `HEX *NAME`) lines of a sha256sum manifest; blank lines are skipped, any
/// other line is an error naming it.
pub fn parse_manifest(text: &str) -> Result<Vec<(String, String)>, HttpError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let parsed = line.split_once(' ').and_then(|(hex, rest)| {
            let name = rest.strip_prefix(' ').or_else(|| rest.strip_prefix('*'))?;
            crate::wire::is_hex64(hex).then(|| (hex.to_ascii_lowercase(), name.to_string()))
        });
        match parsed {
            Some((hex, name)) if files::valid_basename(&name).is_ok() => out.push((hex, name)),
            _ => {
                return Err(HttpError::bad_request(format!(
                    "SHA256SUMS line {}: expected \"SHA256  NAME\" (as sha256sum writes it), got {line:?}",
                    i + 1
                )))
            }
        }
    }
    if out.is_empty() {
        return Err(HttpError::bad_request("SHA256SUMS lists no files"));
    }
    Ok(out)
}

/// Where the manifest and its files are, from what the operator typed: a directory or a URL
/// of one (its `SHA256SUMS`), or the manifest itself.
fn locate(src: &str) -> (String, String) {
    let src = src.trim();
    match src.strip_suffix("SHA256SUMS") {
        Some(base) => (src.to_string(), base.trim_end_matches('/').to_string()),
        None => {
            let base = src.trim_end_matches('/');
            (format!("{base}/SHA256SUMS"), base.to_string())
        }
    }
}

fn open(spec: &str) -> Result<Box<dyn Read + Send>, HttpError> {
    let src =
        crate::source::open(spec).map_err(|e| HttpError::bad_request(format!("opening {spec}: {e}")))?;
    src.open_stream(0).map_err(|e| HttpError::bad_request(format!("reading {spec}: {e}")))
}

/// Imports every file `src`'s manifest lists into the directory it is served from (loaders
/// to the TFTP root, the rest to the boot dir). Every file is received and checked first; a
/// digest mismatch or a read error names the file and leaves every artifact as it was.
/// Returns `(name, size, sha256)` of each installed file.
pub fn import(ctx: &AppContext, src: &str) -> Result<Vec<(String, u64, String)>, HttpError> {
    if src.trim().is_empty() {
        return Err(HttpError::bad_request("give a directory or URL holding SHA256SUMS"));
    }
    let (manifest, base) = locate(src);
    let mut text = String::new();
    open(&manifest)?
        .take(MANIFEST_CAP)
        .read_to_string(&mut text)
        .map_err(|e| HttpError::bad_request(format!("reading {manifest}: {e}")))?;
    let entries = parse_manifest(&text)?;
    let root = tftp_root(ctx);
    let mut received = Vec::new();
    for (want, name) in entries {
        let dir = if LOADERS.iter().any(|(n, _)| *n == name) { &root } else { &ctx.config.paths.boot_dir };
        std::fs::create_dir_all(dir)
            .map_err(|e| HttpError::internal(format!("creating {}: {e}", dir.display())))?;
        let from = format!("{base}/{name}");
        let partial = files::receive_from(
            &mut open(&from)?,
            dir,
            &name,
            ctx.config.tuning.max_upload_bytes,
            &ctx.shutdown,
            &|_| {},
        )?;
        if partial.sha256 != want {
            return Err(HttpError::new(
                422,
                format!(
                    "{from}: sha256 is {}, SHA256SUMS says {want}; nothing was installed",
                    partial.sha256
                ),
            ));
        }
        received.push((dir.join(&name), name, partial));
    }
    let mut done = Vec::new();
    for (dest, name, partial) in received {
        let (size, sha) = (partial.size, partial.sha256.clone());
        partial.commit(&dest)?;
        done.push((name, size, sha));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_parse_as_sha256sum_writes_them_and_bad_lines_are_named() {
        let a = "a".repeat(64);
        let text = format!("{a}  ipxe.efi\n\n{a} *undionly.kpxe\n");
        let got = parse_manifest(&text).unwrap();
        assert_eq!(got, [(a.clone(), "ipxe.efi".to_string()), (a.clone(), "undionly.kpxe".to_string())]);
        let e = parse_manifest(&format!("{a}  ../etc/passwd\n")).unwrap_err();
        assert!(e.detail_text().contains("line 1"), "{}", e.detail_text());
        assert!(parse_manifest("nonsense\n").is_err());
        assert!(parse_manifest("").is_err());
    }

    #[test]
    fn the_manifest_is_found_from_a_directory_a_url_or_itself() {
        assert_eq!(locate("/srv/out/"), ("/srv/out/SHA256SUMS".into(), "/srv/out".into()));
        assert_eq!(
            locate("http://h/out/SHA256SUMS"),
            ("http://h/out/SHA256SUMS".into(), "http://h/out".into())
        );
    }
}
