//! The plan agent against a fake bty-web on loopback: the real binary runs one cycle with
//! `--no-reboot` and a regular file standing in for the disk with the planned serial.

mod common;
use common::*;
use std::path::Path;
use std::sync::{Arc, Mutex};

const MAC: &str = "52:54:00:12:34:56";
const SERIAL: &str = "BTYTEST";

/// One request the fake server received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    body: String,
}

/// A bty-web stand-in: answers the agent's routes from a fixed plan and serves one image.
struct FakeServer {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeServer {
    /// `plan` may contain `{url}`, replaced by the server's base URL. Without `ours` it is an
    /// older server (the Python bty-web): no progress route, and a status with a key beyond
    /// `status` and `reason` is refused with 422.
    fn start(plan: &str, image: Vec<u8>, ours: bool) -> FakeServer {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("binding the fake server");
        let url = format!("http://{}", server.server_addr().to_ip().expect("an IP listener"));
        let plan = plan.replace("{url}", &url);
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        std::thread::spawn(move || {
            for mut req in server.incoming_requests() {
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                let path = req.url().to_string();
                let method = req.method().to_string();
                log.lock().unwrap().push(Seen {
                    method: method.clone(),
                    path: path.clone(),
                    body: body.clone(),
                });
                let pxe = format!("/pxe/{MAC}");
                let strict = |body: &str| {
                    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
                    v.as_object().is_some_and(|o| o.keys().any(|k| k != "status" && k != "reason"))
                };
                let resp = match (method.as_str(), path.strip_prefix(&pxe)) {
                    ("POST", Some("/status")) if !ours && strict(&body) => {
                        tiny_http::Response::from_string(r#"{"detail":[{"type":"extra_forbidden"}]}"#)
                            .with_status_code(422)
                            .boxed()
                    }
                    ("POST", Some("/inventory" | "/status")) => tiny_http::Response::empty(204).boxed(),
                    ("POST", Some("/progress")) if ours => tiny_http::Response::empty(204).boxed(),
                    ("GET", Some("/plan")) => tiny_http::Response::from_string(plan.clone())
                        .with_header(
                            tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap(),
                        )
                        .boxed(),
                    // With its length stated, as bty-web and nginx do (not chunked).
                    ("GET", None) if path == "/image.img" => tiny_http::Response::from_data(image.clone())
                        .with_chunked_threshold(usize::MAX)
                        .boxed(),
                    _ => tiny_http::Response::from_string("not found").with_status_code(404).boxed(),
                };
                let _ = req.respond(resp);
            }
        });
        FakeServer { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The agent's requests to /pxe/{mac}/…, as "METHOD tail".
    fn pxe_calls(&self) -> Vec<String> {
        let pxe = format!("/pxe/{MAC}");
        self.seen()
            .iter()
            .filter_map(|s| s.path.strip_prefix(&pxe).map(|t| format!("{} {t}", s.method)))
            .collect()
    }

    fn status_body(&self) -> Option<serde_json::Value> {
        self.status_bodies().into_iter().next()
    }

    /// Every status the agent posted, in order.
    fn status_bodies(&self) -> Vec<serde_json::Value> {
        self.seen()
            .into_iter()
            .filter(|s| s.path.ends_with("/status"))
            .map(|s| serde_json::from_str(&s.body).expect("status body is JSON"))
            .collect()
    }
}

/// Random image bytes and a zeroed target file bigger than the image.
fn image_and_target(dir: &Path, image_len: usize) -> (Vec<u8>, std::path::PathBuf) {
    let mut image = vec![0u8; image_len];
    getrandom::fill(&mut image).unwrap();
    let target = dir.join("disk.img");
    std::fs::write(&target, vec![0u8; image_len * 2]).unwrap();
    (image, target)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn flash_plan(serial: &str, sha: &str, image_path: &str) -> String {
    format!(
        r#"{{"mode":"flash","image":"{{url}}{image_path}","target_disk_serial":"{serial}","name":"test","disk_image_sha":"{sha}"}}"#
    )
}

fn run_agent(server: &FakeServer, target: &Path) -> std::process::Output {
    bty()
        .args(["plan-agent", "--server", &server.url, "--mac", MAC, "--no-reboot", "--target-file"])
        .arg(format!("{SERIAL}={}", target.display()))
        .output()
        .expect("running bty plan-agent")
}

#[test]
fn flash_plan_writes_the_image_posts_inventory_progress_and_done() {
    let dir = scratch();
    let (image, target) = image_and_target(dir.path(), 3 << 20);
    let server =
        FakeServer::start(&flash_plan(SERIAL, &sha256_hex(&image), "/image.img"), image.clone(), true);
    let out = run_agent(&server, &target);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    assert_eq!(sha256_prefix(&target, image.len() as u64), sha256_hex(&image), "target holds the image");
    let calls = server.pxe_calls();
    assert_eq!(calls.first().map(String::as_str), Some("POST /inventory"), "{calls:?}");
    assert_eq!(calls.get(1).map(String::as_str), Some("GET /plan"), "{calls:?}");
    assert!(calls.iter().any(|c| c == "POST /progress"), "{calls:?}");
    assert_eq!(calls.last().map(String::as_str), Some("POST /status"), "{calls:?}");
    assert_eq!(server.status_body().unwrap()["status"], "done");

    let inv: serde_json::Value =
        serde_json::from_str(&server.seen().iter().find(|s| s.path.ends_with("/inventory")).unwrap().body)
            .unwrap();
    let disk =
        inv["disks"].as_array().unwrap().iter().find(|d| d["serial"] == SERIAL).expect("file disk listed");
    assert_eq!(disk["size_bytes"], (image.len() * 2) as u64);
    assert_eq!(inv["lshw"]["class"], "system");

    let last_progress = server.seen().into_iter().rfind(|s| s.path.ends_with("/progress")).unwrap();
    let p: serde_json::Value = serde_json::from_str(&last_progress.body).unwrap();
    assert_eq!(p["bytes_written"], image.len() as u64, "the last progress post reports the whole image");
    // A full flash (no index) fetched and wrote the whole image, and says so in both posts.
    let full = serde_json::json!({"image_bytes": image.len(), "bytes_fetched": image.len(), "bytes_written": image.len()});
    assert_eq!(p["figures"], full, "{p}");
    assert_eq!(server.status_body().unwrap()["figures"], full);

    let err = String::from_utf8_lossy(&out.stderr);
    let start = err.find("bty: auto-flash starting").expect("start marker");
    let done = err.find("bty: flash complete; rebooting").expect("completion marker");
    assert!(start < done, "{err}");
}

#[test]
fn digest_mismatch_is_reported_failed_with_the_reason() {
    let dir = scratch();
    let (image, target) = image_and_target(dir.path(), 1 << 20);
    let server = FakeServer::start(&flash_plan(SERIAL, &"0".repeat(64), "/image.img"), image, true);
    let out = run_agent(&server, &target);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let status = server.status_body().expect("a status was posted");
    assert_eq!(status["status"], "failed");
    let reason = status["reason"].as_str().unwrap();
    assert!(reason.contains("digest"), "{reason}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("flash complete"), "{}", text(&out));
}

#[test]
fn absent_serial_is_reported_failed_and_the_disk_is_untouched() {
    let dir = scratch();
    let (image, target) = image_and_target(dir.path(), 1 << 20);
    let before = sha256sum(&target);
    let server =
        FakeServer::start(&flash_plan("NO-SUCH-DISK", &sha256_hex(&image), "/image.img"), image, true);
    let out = run_agent(&server, &target);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let status = server.status_body().expect("a status was posted");
    assert_eq!(status["status"], "failed");
    let reason = status["reason"].as_str().unwrap();
    assert!(reason.contains("NO-SUCH-DISK") && reason.contains("not present"), "{reason}");
    assert!(reason.contains(SERIAL), "the reason lists the serials seen: {reason}");
    assert_eq!(sha256sum(&target), before);
}

#[test]
fn unreachable_image_is_reported_failed() {
    let dir = scratch();
    let (image, target) = image_and_target(dir.path(), 1 << 20);
    let server = FakeServer::start(&flash_plan(SERIAL, &sha256_hex(&image), "/missing.img"), image, true);
    let out = run_agent(&server, &target);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let status = server.status_body().expect("a status was posted");
    assert_eq!(status["status"], "failed");
    assert!(status["reason"].as_str().unwrap().contains("unreachable"), "{status}");
}

#[test]
fn an_older_server_without_progress_or_status_figures_still_gets_done() {
    let dir = scratch();
    let (image, target) = image_and_target(dir.path(), 1 << 20);
    let server =
        FakeServer::start(&flash_plan(SERIAL, &sha256_hex(&image), "/image.img"), image.clone(), false);
    let out = run_agent(&server, &target);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let statuses = server.status_bodies();
    assert_eq!(statuses.len(), 2, "with the figures, refused, then without: {statuses:?}");
    assert!(statuses[0]["figures"].is_object());
    assert_eq!(statuses[1], serde_json::json!({"status": "done", "reason": ""}), "the reference's shape");
    assert_eq!(sha256_prefix(&target, image.len() as u64), sha256_hex(&image));
}

#[test]
fn exit_and_inventory_plans_post_no_status() {
    for plan in [r#"{"mode":"exit"}"#, r#"{"mode":"inventory"}"#] {
        let dir = scratch();
        let (_, target) = image_and_target(dir.path(), 4096);
        let server = FakeServer::start(plan, Vec::new(), true);
        let out = run_agent(&server, &target);
        assert_eq!(out.status.code(), Some(0), "{plan}: {}", text(&out));
        assert_eq!(server.pxe_calls(), vec!["POST /inventory", "GET /plan"], "{plan}");
    }
}

#[test]
fn an_unknown_plan_mode_is_named_and_not_acted_on() {
    let dir = scratch();
    let (_, target) = image_and_target(dir.path(), 4096);
    let server = FakeServer::start(r#"{"mode":"ramboot"}"#, Vec::new(), true);
    let out = run_agent(&server, &target);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"ramboot\""), "{}", text(&out));
    assert!(server.status_body().is_none());
}

#[test]
fn a_reflash_with_a_chunk_index_fetches_only_the_changed_chunk() {
    use common::httpd::{Httpd, Resource};
    let dir = scratch();
    let (image, target) = image_and_target(dir.path(), 3 << 20);
    let raw = dir.path().join("image.img");
    std::fs::write(&raw, &image).unwrap();
    let out = run(&["index", raw.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let index = std::fs::read(dir.path().join("image.img.index")).unwrap();
    let httpd = Httpd::start();
    httpd.put("/image.img", Resource::new(image.clone()));
    httpd.put("/image.img.index", Resource::new(index));
    // The disk already holds the image but for one byte in its third MiB (a job's leftovers).
    let mut previous = image.clone();
    previous[(2 << 20) + 5] ^= 1;
    std::fs::write(&target, &previous).unwrap();
    let plan = format!(
        r#"{{"mode":"flash","image":"{}","target_disk_serial":"{SERIAL}","name":"test","disk_image_sha":"{}"}}"#,
        httpd.url("/image.img"),
        sha256_hex(&image)
    );
    let server = FakeServer::start(&plan, Vec::new(), true);
    let out = run_agent(&server, &target);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(sha256_prefix(&target, image.len() as u64), sha256_hex(&image), "target holds the image");
    assert_eq!(server.status_body().unwrap()["status"], "done");
    assert_eq!(httpd.bytes_sent("/image.img"), 1 + (1 << 20), "the probe and the one changed chunk");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bty: delta: 3 chunks compared, 2 unchanged, 1 fetched"), "{err}");
}
