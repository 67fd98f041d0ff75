//! A real OCI registry for tests: Debian's `docker-registry` (distribution v2) on
//! 127.0.0.1 with a random port, a temporary config and storage dir, open, behind htpasswd
//! basic auth, or behind token auth with our token server (`token.rs`); plus a small push client that speaks the distribution API itself
//! (blob uploads, manifest PUT), so no oras or docker binary is needed.

use super::token::{b64, Signer, TokenServer, ISSUER, SERVICE};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the registry binary lives (Debian package `docker-registry`).
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A running registry; killed and its storage removed when dropped.
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// The storage root (blobs under `docker/registry/v2/blobs`).
    pub storage: PathBuf,
    /// How the registry authenticates.
    pub auth: Auth,
    child: Child,
    _dir: tempfile::TempDir,
}

/// How a test registry authenticates clients.
pub enum Auth {
    /// Anyone may push and pull.
    Open,
    /// htpasswd: Basic auth with this user and password.
    Htpasswd(String, String),
    /// distribution's token auth, with our token server as the realm.
    Token(Signer, TokenServer),
}

/// A layer to push: bytes, media type and an optional title annotation.
pub struct LayerSpec<'a> {
    pub bytes: &'a [u8],
    pub media_type: &'a str,
    pub title: Option<&'a str>,
}

impl Registry {
    /// Whether the registry binary is installed (tests say so and skip when it is not).
    pub fn available() -> bool {
        Path::new(REGISTRY_BIN).exists()
    }

    /// Starts an open registry.
    pub fn start() -> Registry {
        Registry::start_with(|_| Auth::Open)
    }

    /// Starts a registry that wants basic auth for `user:password` (htpasswd, bcrypt).
    pub fn start_private(user: &str, password: &str) -> Registry {
        Registry::start_with(|_| Auth::Htpasswd(user.to_string(), password.to_string()))
    }

    /// Starts a registry with token auth whose token server grants pulls, to anyone or (with
    /// `basic` set, a `Basic …` value) only to requests carrying those credentials.
    pub fn start_token(basic: Option<String>) -> Registry {
        Registry::start_with(|dir| {
            let signer = Signer::new(dir);
            let server = TokenServer::start(signer.clone(), basic);
            Auth::Token(signer, server)
        })
    }

    fn start_with(make_auth: impl FnOnce(&Path) -> Auth) -> Registry {
        let dir = tempfile::Builder::new().prefix("bty-registry-").tempdir().expect("registry dir");
        let storage = dir.path().join("storage");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {host}\n",
            storage.display()
        );
        let auth = make_auth(dir.path());
        match &auth {
            Auth::Open => {}
            Auth::Htpasswd(user, pass) => {
                let htpasswd = dir.path().join("htpasswd");
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, pass])
                    .output()
                    .expect("running htpasswd (apache2-utils)");
                assert!(out.status.success(), "htpasswd failed");
                std::fs::write(&htpasswd, &out.stdout).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: bty-test\n    path: {}\n",
                    htpasswd.display()
                ));
            }
            Auth::Token(signer, server) => {
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                    server.realm,
                    signer.cert.display()
                ));
            }
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting docker-registry");
        let reg = Registry { host, storage, auth, child, _dir: dir };
        reg.wait_ready();
        reg
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(&self.host).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("docker-registry did not listen on {} within 20 s", self.host);
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder().http_status_as_error(false).build().new_agent()
    }

    /// The Authorization value the push client sends for `repo`.
    fn auth(&self, repo: &str) -> Option<String> {
        match &self.auth {
            Auth::Open => None,
            Auth::Htpasswd(u, p) => Some(format!("Basic {}", b64(format!("{u}:{p}").as_bytes()))),
            Auth::Token(signer, _) => Some(format!("Bearer {}", signer.mint(repo, &["pull", "push"]))),
        }
    }

    /// Uploads a blob (POST to open an upload, PUT the bytes with `?digest=`) and returns
    /// its `sha256:` digest.
    pub fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = digest(bytes);
        let url = format!("http://{}/v2/{repo}/blobs/uploads/", self.host);
        let mut req = Self::agent().post(&url);
        if let Some(a) = self.auth(repo) {
            req = req.header("Authorization", &a);
        }
        let resp = req.send_empty().expect("opening a blob upload");
        assert_eq!(resp.status().as_u16(), 202, "blob upload to {repo} answered {}", resp.status());
        let location =
            resp.headers().get("location").and_then(|v| v.to_str().ok()).expect("Location").to_string();
        let location =
            if location.starts_with("http") { location } else { format!("http://{}{location}", self.host) };
        let sep = if location.contains('?') { '&' } else { '?' };
        let mut req = Self::agent()
            .put(&format!("{location}{sep}digest={digest}"))
            .header("Content-Type", "application/octet-stream");
        if let Some(a) = self.auth(repo) {
            req = req.header("Authorization", &a);
        }
        let resp = req.send(bytes).expect("uploading blob bytes");
        assert_eq!(resp.status().as_u16(), 201, "blob PUT to {repo} answered {}", resp.status());
        digest
    }

    /// PUTs a manifest under `reference` (a tag or digest) and returns its digest.
    pub fn push_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> String {
        let url = format!("http://{}/v2/{repo}/manifests/{reference}", self.host);
        let mut req = Self::agent().put(&url).header("Content-Type", media_type);
        if let Some(a) = self.auth(repo) {
            req = req.header("Authorization", &a);
        }
        let mut resp = req.send(body).expect("pushing a manifest");
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(status, 201, "manifest PUT to {repo}:{reference} answered {status}: {text}");
        digest(body)
    }

    /// Pushes an ORAS-style artifact (empty config, the given layers) tagged `tag`; returns
    /// the manifest digest.
    pub fn push_artifact(&self, repo: &str, tag: &str, layers: &[LayerSpec]) -> String {
        let config = self.push_blob(repo, b"{}");
        let layers: Vec<serde_json::Value> = layers
            .iter()
            .map(|l| {
                let d = self.push_blob(repo, l.bytes);
                let mut v =
                    serde_json::json!({"mediaType": l.media_type, "digest": d, "size": l.bytes.len()});
                if let Some(t) = l.title {
                    v["annotations"] = serde_json::json!({"org.opencontainers.image.title": t});
                }
                v
            })
            .collect();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.bty.disk-image",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
            "layers": layers,
        });
        let body = serde_json::to_vec(&manifest).unwrap();
        self.push_manifest(repo, tag, "application/vnd.oci.image.manifest.v1+json", &body)
    }

    /// Pushes an image index pointing at `manifest` (which must exist) under `tag`.
    pub fn push_index(&self, repo: &str, tag: &str, manifest: &str, manifest_size: usize) -> String {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest,
                "size": manifest_size,
                "platform": {"architecture": "amd64", "os": "linux"},
            }],
        });
        let body = serde_json::to_vec(&index).unwrap();
        self.push_manifest(repo, tag, "application/vnd.oci.image.index.v1+json", &body)
    }

    /// The file holding a blob's bytes in the registry's storage.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage.join(format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]))
    }

    /// `oras://HOST/REPO:TAG` (or `@digest` when `target` starts with `sha256:`).
    pub fn oras(&self, repo: &str, target: &str) -> String {
        let sep = if target.starts_with("sha256:") { '@' } else { ':' };
        format!("oras://{}/{repo}{sep}{target}", self.host)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sha256:<hex>` of some bytes.
pub fn digest(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    format!("sha256:{}", d.iter().map(|b| format!("{b:02x}")).collect::<String>())
}
