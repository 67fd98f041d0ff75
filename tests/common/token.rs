//! A tiny registry token server for tests: the `realm` of distribution's `auth: token`.
//!
//! It owns a self-signed RSA certificate (made with `openssl`), which the registry is told to
//! trust (`rootcertbundle`), and mints RS256 JWTs carrying that certificate in `x5c`, signed
//! with `openssl dgst`. `GET /auth?service=…&scope=repository:NAME:ACTIONS` answers
//! `{"token": …}`; when built with credentials it wants them as Basic auth and answers 401
//! otherwise. Every request is logged.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The issuer and service names the registry config and the tokens share.
pub const ISSUER: &str = "bty-test-issuer";
pub const SERVICE: &str = "bty-test-registry";

/// Signing material: a key and its self-signed certificate, in a directory.
#[derive(Clone)]
pub struct Signer {
    pub key: PathBuf,
    pub cert: PathBuf,
    x5c: String,
}

impl Signer {
    /// Makes a fresh RSA key and certificate under `dir`.
    pub fn new(dir: &Path) -> Signer {
        let (key, cert) = (dir.join("token.key"), dir.join("token.pem"));
        let status = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=bty-test-token",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("running openssl");
        assert!(status.success(), "openssl req failed");
        let pem = std::fs::read_to_string(&cert).unwrap();
        let x5c: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        Signer { key, cert, x5c }
    }

    /// A JWT granting `actions` on repository `name`.
    pub fn mint(&self, name: &str, actions: &[&str]) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [self.x5c]});
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": "bty-test", "aud": SERVICE,
            "exp": now + 3600, "nbf": now - 60, "iat": now - 60, "jti": format!("{now}-{name}"),
            "access": [{"type": "repository", "name": name, "actions": actions}],
        });
        let signing_input =
            format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
        let mut child = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.key)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("running openssl dgst");
        child.stdin.take().unwrap().write_all(signing_input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "openssl dgst failed");
        format!("{signing_input}.{}", b64url(&out.stdout))
    }
}

/// What the token server was asked.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub query: String,
    pub authorization: Option<String>,
}

/// The running token server; stops when dropped.
pub struct TokenServer {
    /// `http://127.0.0.1:PORT/auth`, the realm.
    pub realm: String,
    log: Arc<Mutex<Vec<TokenRequest>>>,
    stop: Arc<AtomicBool>,
}

impl TokenServer {
    /// Serves tokens signed by `signer`; with `basic` (the expected `Basic …` value) set,
    /// refuses requests without it.
    pub fn start(signer: Signer, basic: Option<String>) -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let realm = format!("http://{}/auth", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (lg, sp) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            while !sp.load(Ordering::SeqCst) {
                let Ok((conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = conn.set_nonblocking(false);
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut authorization = None;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("authorization") {
                            authorization = Some(v.trim().to_string());
                        }
                    }
                }
                let query = target.split_once('?').map(|(_, q)| q.to_string()).unwrap_or_default();
                lg.lock()
                    .unwrap()
                    .push(TokenRequest { query: query.clone(), authorization: authorization.clone() });
                let mut conn = conn;
                if basic.is_some() && authorization != basic {
                    let _ = conn.write_all(
                        b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    continue;
                }
                // scope=repository:NAME:ACTIONS (percent-encoded or not).
                let scope = query
                    .split('&')
                    .find_map(|p| p.strip_prefix("scope="))
                    .unwrap_or("")
                    .replace("%3A", ":")
                    .replace("%2F", "/");
                let name = scope
                    .strip_prefix("repository:")
                    .and_then(|s| s.rsplit_once(':'))
                    .map(|(n, _)| n)
                    .unwrap_or("");
                let body =
                    serde_json::json!({"token": signer.mint(name, &["pull"]), "expires_in": 300}).to_string();
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        TokenServer { realm, log, stop }
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<TokenRequest> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Standard base64 with padding.
pub fn b64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() { ABC[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

/// base64url without padding (JWT).
fn b64url(data: &[u8]) -> String {
    b64(data).trim_end_matches('=').replace('+', "-").replace('/', "_")
}
