//! How bty talks to an OCI registry before it asks for bytes: which scheme, which credentials,
//! and the token dance that turns them into an `Authorization` header.
//!
//! Anonymous pulls follow the reference (§2.7): the conventional `/token` endpoint first, then
//! the realm named by `/v2/`'s `WWW-Authenticate`. On top of that: a registry that answers
//! `/v2/` with 200 needs no authorization at all; one that asks for `Basic` gets the
//! docker-style credentials; `BTY_ORAS_TOKEN` is a bearer used as is; credentials for the
//! token request come from `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`
//! (`auths.HOST.auth`). Plain HTTP is used only for loopback registries and the hosts listed
//! in `BTY_ORAS_INSECURE`. Credential helpers (`credsStore`) are not run.

use super::client::{self, header};
use crate::error::{Error, ErrorKind, Result};
use std::path::PathBuf;

/// Largest token or `/v2/` answer read.
const META_CAP: u64 = 10 << 20;

/// A registry host and how to reach it.
#[derive(Debug, Clone)]
pub struct Registry {
    /// `host[:port]` as written in the ref.
    pub host: String,
    /// `http://host` or `https://host`.
    pub base: String,
}

impl Registry {
    /// The registry at `host`, over HTTPS unless it is loopback or listed as insecure.
    pub fn new(host: &str) -> Registry {
        let scheme = if is_loopback(host) || listed_insecure(host) { "http" } else { "https" };
        Registry { host: host.to_string(), base: format!("{scheme}://{host}") }
    }

    /// The `Authorization` value for pulling `repo`, or `None` for an open registry.
    pub fn authorize(&self, repo: &str) -> Result<Option<String>> {
        if let Some(token) = std::env::var("BTY_ORAS_TOKEN").ok().filter(|t| !t.trim().is_empty()) {
            return Ok(Some(format!("Bearer {}", token.trim())));
        }
        let basic = docker_config_auth(&self.host);
        let scope = format!("repository:{repo}:pull");
        let conventional =
            format!("{}/token?service={}&scope={}", self.base, query(&self.host), query(&scope));
        let first = match self.fetch_token(&conventional, basic.as_deref()) {
            Ok(tok) => return Ok(Some(format!("Bearer {tok}"))),
            Err(e) => e,
        };
        let probe_url = format!("{}/v2/", self.base);
        let shown = probe_url.clone();
        let resp = client::send_with_retries(&shown, || client::agent().get(&probe_url).call())?;
        match resp.status().as_u16() {
            200 => Ok(None),
            401 => {
                let challenge = header(&resp, "www-authenticate").unwrap_or("").to_string();
                let (scheme, params) = parse_challenge(&challenge);
                match scheme.as_str() {
                    "bearer" => {
                        let realm = params.iter().find(|(k, _)| k == "realm").map(|(_, v)| v.clone());
                        let Some(realm) = realm else { return Err(first) };
                        let service = params
                            .iter()
                            .find(|(k, _)| k == "service")
                            .map(|(_, v)| v.clone())
                            .unwrap_or_else(|| self.host.clone());
                        let sep = if realm.contains('?') { '&' } else { '?' };
                        let url = format!("{realm}{sep}service={}&scope={}", query(&service), query(&scope));
                        Ok(Some(format!("Bearer {}", self.fetch_token(&url, basic.as_deref())?)))
                    }
                    "basic" => match basic {
                        Some(b) => Ok(Some(format!("Basic {b}"))),
                        None => Err(self.needs_credentials()),
                    },
                    _ => Err(first),
                }
            }
            status => Err(client::status_error(&shown, status).context(first.to_string())),
        }
    }

    fn needs_credentials(&self) -> Error {
        Error::new(
            ErrorKind::Unauthorized,
            format!(
                "registry {} needs credentials: add them to ~/.docker/config.json (auths.\"{}\".auth = \
                 base64 of user:password, or `docker login`) or set BTY_ORAS_TOKEN",
                self.host, self.host
            ),
        )
    }

    /// GETs a token endpoint and returns its `token` (or `access_token`).
    fn fetch_token(&self, url: &str, basic: Option<&str>) -> Result<String> {
        let shown = super::url::redact(url);
        let resp = client::send_with_retries(&shown, || {
            let mut req = client::agent().get(url);
            if let Some(b) = basic {
                req = req.header("Authorization", &format!("Basic {b}"));
            }
            req.call()
        })?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(match basic {
                Some(_) => Error::new(
                    ErrorKind::Unauthorized,
                    format!("registry {} refused the credentials in the docker config", self.host),
                ),
                None => self.needs_credentials(),
            });
        }
        if status != 200 {
            return Err(client::status_error(&shown, status));
        }
        let body = client::read_capped(resp, META_CAP, &shown)?;
        let json: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| Error::failed(format!("{shown}: the token answer is not JSON: {e}")))?;
        ["token", "access_token"]
            .iter()
            .find_map(|k| json.get(k).and_then(|v| v.as_str()).filter(|t| !t.is_empty()))
            .map(str::to_string)
            .ok_or_else(|| Error::failed(format!("{shown}: the token answer has no token")))
    }
}

/// Whether `host[:port]` is loopback (`localhost`, 127.0.0.0/8, `::1`).
fn is_loopback(hostport: &str) -> bool {
    if let Ok(ip) = hostport.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    let host = match hostport.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => hostport,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
}

/// Whether `host[:port]` is named in `BTY_ORAS_INSECURE` (comma-separated `host:port` list).
fn listed_insecure(host: &str) -> bool {
    std::env::var("BTY_ORAS_INSECURE")
        .map(|list| list.split(',').any(|h| h.trim().eq_ignore_ascii_case(host)))
        .unwrap_or(false)
}

/// The docker config file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// The base64 `user:password` stored for `host` in the docker config, if any. Keys may carry a
/// scheme and a path (`https://index.docker.io/v1/`); those are ignored when matching.
fn docker_config_auth(host: &str) -> Option<String> {
    let path = docker_config_path()?;
    let text = std::fs::read_to_string(&path).ok()?;
    let json: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            crate::log_warn!("ignoring {}: not JSON ({e})", path.display());
            return None;
        }
    };
    let auths = json.get("auths")?.as_object()?;
    auths.iter().find_map(|(key, entry)| {
        let bare = key.split_once("://").map(|(_, r)| r).unwrap_or(key);
        let bare = bare.split('/').next().unwrap_or(bare);
        if !bare.eq_ignore_ascii_case(host) {
            return None;
        }
        entry.get("auth")?.as_str().map(str::trim).filter(|a| !a.is_empty()).map(str::to_string)
    })
}

/// Splits `Bearer realm="…",service="…"` into the lower-cased scheme and its parameters
/// (names lower-cased, quotes removed; commas inside quotes kept).
fn parse_challenge(v: &str) -> (String, Vec<(String, String)>) {
    let v = v.trim();
    let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
    let mut params = Vec::new();
    let mut rest = rest.trim();
    while let Some((name, after)) = rest.split_once('=') {
        let name = name.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            }
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        params.push((name, value.to_string()));
        rest = next.trim_start_matches([',', ' ']);
    }
    (scheme.to_ascii_lowercase(), params)
}

/// Percent-encodes a query value, keeping `/` and `:` as the reference does for scopes.
fn query(s: &str) -> String {
    const KEPT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/')
        .remove(b':');
    percent_encoding::utf8_percent_encode(s, KEPT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_params_are_split_with_quoted_commas_kept() {
        let (scheme, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(scheme, "bearer");
        assert_eq!(p[0], ("realm".into(), "https://auth.example/token".into()));
        assert_eq!(p[2], ("scope".into(), "repository:a/b:pull,push".into()));
    }

    #[test]
    fn loopback_hosts_are_recognised_with_and_without_ports() {
        for h in ["localhost:5000", "127.0.0.1:5000", "127.9.9.9", "[::1]:5000", "::1"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["ghcr.io", "10.0.0.1:5000", "localhost.example.com"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn scopes_keep_slashes_and_colons() {
        assert_eq!(query("repository:a/b:pull"), "repository:a/b:pull");
        assert_eq!(query("a b&c"), "a%20b%26c");
    }
}
