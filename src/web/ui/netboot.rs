//! `GET /ui/netboot`: what PXE clients need from this server — the boot artifacts (present or
//! missing, size, sha256), an upload form (`bty.js` streams to `PUT /boot/{name}`), the TFTP
//! answer, and the DHCP cheat sheet (options 60/66/67 for BIOS, UEFI, iPXE and UEFI HTTP Boot,
//! with dnsmasq and ISC dhcpd snippets) filled in with this host's addresses.
//!
//! Addresses come from the request's `Host` and from the kernel's local IPv4 routes
//! (`/proc/net/fib_trie`); the operator picks which one the snippets use. Digests are cached
//! by (path, size, mtime) so a page view does not re-read a 50 MiB initrd.

use super::view::{self, Page};
use crate::web::context::event;
use crate::web::context::AppContext;
use crate::web::request::Request;
use crate::web::response::{Body, HttpError, Reply, Response};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

type DigestCache = Mutex<HashMap<PathBuf, (u64, SystemTime, String)>>;

fn digest_cache() -> &'static DigestCache {
    static CACHE: std::sync::OnceLock<DigestCache> = std::sync::OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// sha256 of a file, cached while its size and mtime stay the same.
fn sha256_of(path: &Path, size: u64, mtime: SystemTime) -> Option<String> {
    if let Some((s, m, d)) = digest_cache().lock().unwrap_or_else(|p| p.into_inner()).get(path) {
        if *s == size && *m == mtime {
            return Some(d.clone());
        }
    }
    let mut f = std::fs::File::open(path).ok()?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(_) => return None,
        }
    }
    let d = crate::source::hex(&h.finalize());
    digest_cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(path.to_path_buf(), (size, mtime, d.clone()));
    Some(d)
}

#[derive(serde::Serialize)]
struct Artifact {
    name: String,
    role: String,
    dir: String,
    present: bool,
    size: Option<u64>,
    modified: Option<String>,
    sha256: Option<String>,
}

fn artifact(dir: &Path, name: &str, role: &str) -> Artifact {
    let path = dir.join(name);
    let meta = std::fs::metadata(&path).ok().filter(|m| m.is_file());
    let (size, modified, sha256) = match &meta {
        Some(m) => {
            let mtime = m.modified().ok();
            let sha = mtime.and_then(|t| sha256_of(&path, m.len(), t));
            (Some(m.len()), mtime.map(|t| crate::db::format_ts(t.into())), sha)
        }
        None => (None, None, None),
    };
    Artifact {
        name: name.into(),
        role: role.into(),
        dir: dir.display().to_string(),
        present: meta.is_some(),
        size,
        modified,
        sha256,
    }
}

/// This host's IPv4 addresses other than loopback, from `/proc/net/fib_trie` (the `/32 host
/// LOCAL` entries), sorted and deduplicated.
pub fn local_ipv4(fib_trie: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in fib_trie.lines() {
        let t = line.trim_start();
        if let Some(addr) = t.strip_prefix("|-- ") {
            last = addr.trim().parse().ok();
        } else if t.starts_with("/32 host LOCAL") {
            if let Some(a) = last.filter(|a| !a.is_loopback()) {
                out.push(a);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `GET /ui/netboot[?host=ADDR]`.
pub fn page(ctx: &AppContext, req: &Request<'_>) -> Reply {
    render(ctx, req, 200, None, "")
}

/// `POST /ui/netboot/import` (form `src`): installs the artifacts a `SHA256SUMS` manifest
/// lists ([`crate::web::artifacts::import`]), audited; errors are shown beside the form.
pub fn import(ctx: &AppContext, req: &Request<'_>) -> Reply {
    let form = req.form(crate::web::handlers::SMALL_JSON)?;
    let src = super::field(&form, "src").to_string();
    match crate::web::artifacts::import(ctx, &src) {
        Ok(done) => {
            let mut e = event(
                "netboot.artifact.imported",
                ("netboot", &src),
                "operator",
                format!("{} artifact(s) imported from {src}", done.len()),
            );
            e.details = Some(serde_json::json!({ "src": src, "files": done }));
            ctx.audit(Some(req), e);
            Ok(Response::see_other("/ui/netboot?done=imported"))
        }
        Err(err) => {
            let mut e =
                event("netboot.artifact.import.failed", ("netboot", &src), "operator", err.detail_text());
            e.details = Some(serde_json::json!({ "src": src, "reason": err.detail_text() }));
            ctx.audit(Some(req), e);
            render(ctx, req, err.status, Some(err.detail_text()), &src)
        }
    }
}

/// The address the page's snippets (and the boot stick) name for this server.
struct Address {
    /// The host part of the request's `Host` (or of the listen address).
    req_name: String,
    /// The port clients reach bty-web on.
    port: String,
    /// `?host=` when it is an IP address or the request's own host name, else `req_name`.
    chosen: String,
}

fn address(ctx: &AppContext, req: &Request<'_>) -> Address {
    let base = ctx.base_url(req);
    let req_host = base.trim_start_matches("http://").to_string();
    let (req_name, port) = match req_host.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() && (!h.contains(':') || h.ends_with(']')) => {
            (h.to_string(), p.to_string())
        }
        _ => (req_host.clone(), "80".to_string()),
    };
    let chosen = req
        .query("host")
        .filter(|h| h.parse::<IpAddr>().is_ok() || *h == req_name)
        .map(str::to_string)
        .unwrap_or_else(|| req_name.clone());
    Address { req_name, port, chosen }
}

/// `GET /ui/netboot/bty-boot-stick.img[?host=ADDR]`: the boot stick
/// ([`crate::web::boot_stick`]) chaining to the address the page shows (`?host=` as the
/// page's picker sets it). A missing loader or an address that is not a plain host[:port]
/// is a readable error page, not a download.
pub fn boot_stick(ctx: &AppContext, req: &Request<'_>) -> Reply {
    use crate::web::boot_stick::{self as stick, LOADER, LOADER_MAX};
    let Address { port, chosen, .. } = address(ctx, req);
    // An IPv6 literal picked from `?host=` comes without brackets.
    let host = if chosen.contains(':') && !chosen.starts_with('[') { format!("[{chosen}]") } else { chosen };
    let authority = if port == "80" { host } else { format!("{host}:{port}") };
    let authority = stick::authority(&authority)?.to_string();
    let path = ctx.config.paths.boot_dir.join(LOADER);
    let size = std::fs::metadata(&path).map(|m| m.len()).map_err(|_| {
        HttpError::not_found(format!(
            "{LOADER} is not in the boot directory {}: import bty-media's netboot output on this page (it stages Debian trixie's iPXE as {LOADER}) or upload that ipxe.efi as {LOADER}",
            ctx.config.paths.boot_dir.display()
        ))
    })?;
    if size > LOADER_MAX {
        return Err(HttpError::bad_request(format!(
            "{} is {size} bytes, more than an iPXE build ({LOADER_MAX} at most): replace it with Debian trixie's ipxe.efi",
            path.display()
        )));
    }
    let loader =
        std::fs::read(&path).map_err(|e| HttpError::internal(format!("reading {}: {e}", path.display())))?;
    let img = stick::build(&loader, &authority)?;
    let mut e = event(
        "netboot.boot_stick.downloaded",
        ("netboot", stick::FILE_NAME),
        "operator",
        format!("boot stick for http://{authority}/ downloaded"),
    );
    e.details = Some(serde_json::json!({ "server": authority, "bytes": img.len() }));
    ctx.audit(Some(req), e);
    let (k, v) = crate::web::files::attachment(stick::FILE_NAME);
    Ok(Response::new(200, Body::Bytes(img)).header("Content-Type", "application/octet-stream").header(&k, v))
}

fn render(
    ctx: &AppContext,
    req: &Request<'_>,
    status: u16,
    import_error: Option<String>,
    import_src: &str,
) -> Reply {
    let paths = &ctx.config.paths;
    let nb = &ctx.config.netboot;
    let tftp_root = crate::web::artifacts::tftp_root(ctx);
    let mut artifacts: Vec<Artifact> =
        crate::web::artifacts::needed(ctx).iter().map(|n| artifact(&n.dir, &n.name, &n.role)).collect();
    if !ctx.config.tftp.enabled {
        for (name, role) in crate::web::artifacts::LOADERS {
            artifacts.push(artifact(&tftp_root, name, role));
        }
    }
    let stick =
        artifact(&paths.boot_dir, crate::web::boot_stick::LOADER, crate::web::boot_stick::LOADER_ROLE);
    let stick_ready = stick.present;
    artifacts.push(stick);
    let known: Vec<String> = artifacts.iter().map(|a| a.name.clone()).collect();
    if let Ok(entries) = std::fs::read_dir(&paths.boot_dir) {
        let mut extra: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.') && !known.contains(n))
            .collect();
        extra.sort();
        for n in extra {
            artifacts.push(artifact(&paths.boot_dir, &n, "other file in the boot directory"));
        }
    }
    let Address { req_name, port, chosen } = address(ctx, req);
    let addrs: Vec<String> = local_ipv4(&std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default())
        .into_iter()
        .map(|a| a.to_string())
        .collect();
    let http = if port == "80" { format!("http://{chosen}") } else { format!("http://{chosen}:{port}") };
    let (tftp_ok, tftp_detail) = super::dashboard::tftp_status(ctx);
    let mut warnings = Vec::new();
    let listen_ip = ctx.config.server.listen.parse::<std::net::SocketAddr>().ok().map(|a| a.ip());
    if listen_ip.is_some_and(|ip| ip.is_loopback()) {
        warnings.push(format!(
            "bty-web listens only on {} (loopback): PXE clients cannot reach it. Set [server] listen = \"0.0.0.0:{port}\" or this host's address.",
            ctx.config.server.listen
        ));
    }
    if chosen.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) || chosen == "localhost" {
        warnings.push(format!(
            "The sheet below says {chosen}, which every PXE client takes to mean itself. Pick one of this host's addresses above."
        ));
    }
    let missing = crate::web::artifacts::missing(ctx);
    let page = Page {
        title: "Netboot",
        nav: "netboot",
        intro: "What PXE clients fetch from this server, and how to point your DHCP server at it (bty runs no DHCP).",
    };
    let data = serde_json::json!({ "proxy_dhcp": crate::web::proxy_dhcp::state(ctx)?, "artifacts": artifacts, "addrs": addrs, "chosen": chosen, "req_name": req_name, "http": http, "tftp_listen": ctx.config.tftp.listen.clone(), "tftp_enabled": ctx.config.tftp.enabled, "tftp_root": tftp_root.display().to_string(), "boot_dir": paths.boot_dir.display().to_string(), "kernel": nb.kernel.clone(), "initrd": nb.initrd.clone(), "tftp_ok": tftp_ok, "tftp_detail": tftp_detail, "warnings": warnings, "missing": missing, "import_src": import_src, "import_error": import_error, "stick_ready": stick_ready, "stick_loader": crate::web::boot_stick::LOADER, "stick_name": crate::web::boot_stick::FILE_NAME });
    view::render(ctx, req, status, "netboot.html", page, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses_are_the_host_local_32s_without_loopback() {
        let trie = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 127.0.0.1\n        /32 host LOCAL\n     |-- 192.0.2.0\n        /24 link UNICAST\n     |-- 192.0.2.2\n        /32 host LOCAL\n     |-- 192.0.2.255\n        /32 link BROADCAST\nLocal:\n     |-- 192.0.2.2\n        /32 host LOCAL\n";
        assert_eq!(local_ipv4(trie), [Ipv4Addr::new(192, 0, 2, 2)]);
    }
}
