//! The bty-web container image (`make media-container`, checked by `make media-test`): an OCI
//! layout with linux/amd64 and linux/arm64 under one index, pushed to and pulled from a real
//! registry (Debian's docker-registry), and the pulled amd64 root filesystem, unpacked with
//! umoci, running bty-web as the image's non-root user in a chroot (podman/crun cannot run
//! containers in this sandbox), answering /healthz and its own HEALTHCHECK command.
//!
//! The artifacts are read from `$BTY_MEDIA_OUT` (default `out/media`). When they are missing the
//! test says so and passes, unless `BTY_MEDIA_TEST=1` (`make media-test` sets it).

mod common;

use common::registry::Registry;
use common::webserver::{agent, WebServer};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The pull size of one platform (compressed layers + config) may not exceed this.
const BUDGET: u64 = 15 * 1024 * 1024;
const HEALTHCHECK: [&str; 3] = ["CMD", "/usr/local/bin/bty-web", "health"];

fn media_out() -> PathBuf {
    match std::env::var_os("BTY_MEDIA_OUT") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("out/media"),
    }
}

/// The layout directory, or None (test skipped) when it was not built and media tests are not
/// required.
fn layout() -> Option<PathBuf> {
    let dir = media_out().join("bty-web-oci");
    if dir.join("index.json").exists() {
        return Some(dir);
    }
    assert!(
        std::env::var("BTY_MEDIA_TEST").is_err(),
        "{} is missing: run `make media-container`",
        dir.display()
    );
    eprintln!("skipping: {} is not built (make media-container)", dir.display());
    None
}

fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(out.status.success(), "{program} {args:?} failed: {}", common::text(&out));
    out
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The single tag of the layout.
fn tag(layout: &Path) -> String {
    let index = read_json(&layout.join("index.json"));
    index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .expect("a tagged index")
        .to_string()
}

/// The platforms (`os/arch`) of an image index.
fn platforms(index: &serde_json::Value) -> Vec<String> {
    let mut p: Vec<String> = index["manifests"]
        .as_array()
        .expect("an image index")
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    p.sort();
    p
}

fn blob(layout: &Path, digest: &str) -> serde_json::Value {
    read_json(&layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:")))
}

#[test]
fn the_layout_indexes_both_platforms_within_the_size_budget() {
    let Some(layout) = layout() else { return };
    let reference = format!("oci:{}:{}", layout.display(), tag(&layout));
    let index = json(&run("skopeo", &["inspect", "--raw", &reference]));
    assert_eq!(platforms(&index), ["linux/amd64", "linux/arm64"]);
    for m in index["manifests"].as_array().unwrap() {
        let manifest = blob(&layout, m["digest"].as_str().unwrap());
        let layers: u64 =
            manifest["layers"].as_array().unwrap().iter().map(|l| l["size"].as_u64().unwrap()).sum();
        let total = layers + manifest["config"]["size"].as_u64().unwrap();
        assert!(total <= BUDGET, "{}: {total} bytes, over the 15 MiB budget", m["platform"]);
        let config = blob(&layout, manifest["config"]["digest"].as_str().unwrap());
        let arch = m["platform"]["architecture"].as_str().unwrap();
        assert_eq!(config["architecture"], arch);
        // The binary in the layer is built for the platform the index claims.
        let layer = manifest["layers"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:");
        let layer = layout.join("blobs/sha256").join(layer);
        let bin = run("tar", &["-xzOf", layer.to_str().unwrap(), "usr/local/bin/bty"]).stdout;
        let machine = u16::from_le_bytes([bin[18], bin[19]]);
        assert_eq!(
            machine,
            if arch == "arm64" { 183 } else { 62 },
            "the {arch} image's bty is for ELF machine {machine}"
        );
        let c = &config["config"];
        assert_eq!(c["Entrypoint"], serde_json::json!(["/usr/local/bin/bty-web"]));
        assert_eq!(c["User"], "65532:65532");
        assert!(c["ExposedPorts"].get("8080/tcp").is_some(), "{c}");
        assert!(c["Volumes"].get("/var/lib/bty").is_some(), "{c}");
    }
}

#[test]
fn the_docker_archives_carry_the_healthcheck_and_their_platform() {
    let Some(layout) = layout() else { return };
    for arch in ["amd64", "arm64"] {
        let archive = layout.with_file_name(format!("bty-web-{arch}.docker.tar"));
        let archive = archive.to_str().unwrap();
        let manifest = json(&run("tar", &["-xOf", archive, "manifest.json"]));
        let config_name = manifest[0]["Config"].as_str().expect("Config in manifest.json");
        let config = json(&run("tar", &["-xOf", archive, config_name]));
        assert_eq!(config["architecture"], arch);
        assert_eq!(config["config"]["Healthcheck"]["Test"], serde_json::json!(HEALTHCHECK), "{archive}");
    }
}

#[test]
fn the_image_goes_through_a_registry_and_its_amd64_root_runs_bty_web_as_non_root() {
    let Some(layout) = layout() else { return };
    assert!(Registry::available(), "docker-registry is not installed; run tests/deps.sh");
    let reg = Registry::start();
    let tag = tag(&layout);
    let remote = format!("docker://{}/bty/bty-web:{tag}", reg.host);
    let src = format!("oci:{}:{tag}", layout.display());
    run("skopeo", &["copy", "--quiet", "--all", "--dest-tls-verify=false", &src, &remote]);
    let index = json(&run("skopeo", &["inspect", "--raw", "--tls-verify=false", &remote]));
    assert_eq!(platforms(&index), ["linux/amd64", "linux/arm64"], "what the registry serves");

    let dir = common::scratch();
    let pulled = format!("oci:{}:amd64", dir.path().join("pulled").display());
    run(
        "skopeo",
        &[
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--override-os",
            "linux",
            "--override-arch",
            "amd64",
            &remote,
            &pulled,
        ],
    );
    let bundle = dir.path().join("bundle");
    let image = format!("{}:amd64", dir.path().join("pulled").display());
    run("umoci", &["unpack", "--image", &image, bundle.to_str().unwrap()]);

    // Run the process the runtime config describes: user, arguments, environment.
    let runtime = read_json(&bundle.join("config.json"));
    let process = &runtime["process"];
    let (uid, gid) = (process["user"]["uid"].as_u64().unwrap(), process["user"]["gid"].as_u64().unwrap());
    assert_ne!(uid, 0, "the image runs as root");
    let rootfs = bundle.join("rootfs");
    let args: Vec<&str> = process["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(args, ["/usr/local/bin/bty-web"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let chroot = |argv: &[&str]| {
        let mut cmd = Command::new("chroot");
        cmd.arg(format!("--userspec={uid}:{gid}")).arg(&rootfs).args(argv).env_clear();
        for kv in process["env"].as_array().unwrap() {
            let (k, v) = kv.as_str().unwrap().split_once('=').unwrap();
            cmd.env(k, v);
        }
        cmd.env("BTY_SERVER_LISTEN", &listen);
        // bty-web refuses to start with a display time zone it cannot look up: this proves the
        // image carries the zone database (the binary has none of its own).
        cmd.env("BTY_UI_TIME_ZONE", "Asia/Kolkata");
        cmd
    };
    let mut server = WebServer::spawn(chroot(&args), &rootfs.join("var/lib/bty"));
    let resp = agent().get(&format!("http://{listen}/healthz")).call().expect("GET /healthz");
    assert_eq!(resp.status().as_u16(), 200);

    // The state volume is the unprivileged user's: the generated password landed there.
    use std::os::unix::fs::MetadataExt;
    let pw =
        std::fs::metadata(rootfs.join("var/lib/bty/admin-password")).expect("admin-password in the volume");
    assert_eq!((pw.uid() as u64, pw.gid() as u64), (uid, gid));

    // The HEALTHCHECK command, as the image declares it, says healthy, and unhealthy once the
    // server is gone.
    let health = |what: &str| chroot(&HEALTHCHECK[1..]).output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let up = health("health check while running");
    assert!(up.status.success(), "health check of a running server: {}", common::text(&up));
    assert!(server.terminate().success(), "bty-web did not stop cleanly: {:?}", server.log_lines());
    let down = health("health check after stop");
    assert!(!down.status.success(), "health check passed with no server: {}", common::text(&down));
}
