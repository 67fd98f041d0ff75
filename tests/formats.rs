//! Decoders, black-box: images made by the real compressors and `qemu-img` decode to exactly the
//! disk they came from (`bty inspect --decoded-hash` against `sha256sum`), and truncated,
//! corrupted, tarred, backed and encrypted images fail with a message that says what to do.

mod common;
mod image_fixture;

use common::*;
use image_fixture::{build, sh, DISK_SIZE, VARIANTS};
use std::path::Path;

/// `bty inspect --json ARGS` parsed, asserting success.
fn inspect_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["inspect", "--json"];
    all.extend_from_slice(args);
    let out = run(&all);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", text(&out)))
}

fn path(dir: &Path, file: &str) -> String {
    dir.join(file).to_str().unwrap().to_string()
}

#[test]
fn every_format_decodes_to_the_original_disk() {
    let dir = scratch();
    let disk = build(dir.path());
    let want = sha256sum(&disk);
    for v in VARIANTS {
        let found = inspect_json(&["--decoded-hash", &path(dir.path(), v.file)]);
        assert_eq!(found["format"], v.format, "{}", v.file);
        assert_eq!(found["decoded_sha256"], want.as_str(), "{} decodes to other bytes", v.file);
        assert_eq!(found["decoded_size"], DISK_SIZE, "{}", v.file);
        let size = if v.knows_size { serde_json::json!(DISK_SIZE) } else { serde_json::Value::Null };
        assert_eq!(found["virtual_size"], size, "{}", v.file);
    }
}

#[test]
fn concatenated_streams_decode_whole_and_zstd_sizes_add_up() {
    let dir = scratch();
    build(dir.path());
    sh(
        dir.path(),
        "head -c 2M disk.img > a; tail -c +2097153 disk.img > b
         for t in 'zstd -q -c:zst' 'gzip -c:gz' 'xz -c:xz' 'bzip2 -c:bz2'; do
           cmd=${t%:*}; ext=${t#*:}
           $cmd a > a.$ext; $cmd b > b.$ext; cat a.$ext b.$ext > multi.img.$ext
         done",
    );
    let want = sha256sum(&dir.path().join("disk.img"));
    for ext in ["zst", "gz", "xz", "bz2"] {
        let found = inspect_json(&["--decoded-hash", &path(dir.path(), &format!("multi.img.{ext}"))]);
        assert_eq!(found["decoded_sha256"], want.as_str(), "multi-member .{ext}");
    }
    let zst = inspect_json(&[&path(dir.path(), "multi.img.zst")]);
    assert_eq!(zst["virtual_size"], DISK_SIZE, "the sum of both frames' content sizes");
    let xz = inspect_json(&[&path(dir.path(), "multi.img.xz")]);
    assert_eq!(xz["virtual_size"], DISK_SIZE, "the sum of both streams' indexes");
}

#[test]
fn zstd_long_mode_streamed_input_and_pzstd_decode() {
    let dir = scratch();
    build(dir.path());
    // --long=31 needs a 2 GiB window; compressing from a pipe leaves the content size out;
    // pzstd opens with a skippable frame.
    sh(
        dir.path(),
        "zstd -q --long=31 -c disk.img > long.img.zst; cat disk.img | zstd -q -c > piped.img.zst
         pzstd -q -p 2 disk.img -o pzstd.img.zst",
    );
    let want = sha256sum(&dir.path().join("disk.img"));
    let long = inspect_json(&["--decoded-hash", &path(dir.path(), "long.img.zst")]);
    assert_eq!(long["decoded_sha256"], want.as_str());
    let piped = inspect_json(&["--decoded-hash", &path(dir.path(), "piped.img.zst")]);
    assert_eq!(piped["decoded_sha256"], want.as_str());
    assert_eq!(piped["virtual_size"], serde_json::Value::Null, "no content size recorded");
    let pzstd = inspect_json(&["--decoded-hash", &path(dir.path(), "pzstd.img.zst")]);
    assert_eq!(pzstd["format"], "zst");
    assert_eq!(pzstd["decoded_sha256"], want.as_str());
}

#[test]
fn truncated_images_fail_and_say_so() {
    let dir = scratch();
    build(dir.path());
    for v in VARIANTS.iter().filter(|v| v.format != "raw") {
        let cut = format!("cut-{}", v.file);
        sh(dir.path(), &format!("head -c $(( $(stat -c %s {0}) * 3 / 4 )) {0} > {cut}", v.file));
        let out = run(&["inspect", "--decoded-hash", &path(dir.path(), &cut)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {}", v.file, text(&out));
        assert!(err.contains(&cut) && err.contains("truncated"), "{}: {err}", v.file);
    }
}

#[test]
fn truncated_stream_errors_name_the_format_and_offset() {
    let dir = scratch();
    build(dir.path());
    sh(dir.path(), "head -c 1000000 disk.img.gz > cut.img.gz");
    let out = run(&["inspect", "--decoded-hash", &path(dir.path(), "cut.img.gz")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("decoding gzip stream of")
            && err.contains("unexpected end of input after 1000000 compressed bytes"),
        "{}",
        text(&out)
    );
}

#[test]
fn corrupted_streams_fail() {
    let dir = scratch();
    build(dir.path());
    for file in ["disk.img.zst", "disk.img.gz", "disk.img.xz", "disk.img.bz2"] {
        let bad = format!("bad-{file}");
        // Overwrite 16 bytes in the middle of the stream.
        sh(
            dir.path(),
            &format!(
                "cp {file} {bad}; printf 'BTYBTYBTYBTYBTYB' | dd of={bad} bs=1 seek=$(( $(stat -c %s {file}) / 2 )) \
                 conv=notrunc status=none"
            ),
        );
        let out = run(&["inspect", "--decoded-hash", &path(dir.path(), &bad)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{file}: {}", text(&out));
        assert!(err.contains(&bad) && err.contains("corrupt"), "{file}: {err}");
    }
}

#[test]
fn a_qcow2_with_a_backing_file_is_refused_with_the_fix() {
    let dir = scratch();
    build(dir.path());
    sh(dir.path(), "qemu-img create -q -f qcow2 -b disk.img -F raw overlay.qcow2");
    let out = run(&["inspect", &path(dir.path(), "overlay.qcow2")]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("has a backing file (disk.img); flatten it first with `qemu-img convert -O qcow2"),
        "{err}"
    );
}

#[test]
fn an_encrypted_qcow2_is_refused() {
    let dir = scratch();
    // qemu-img 7.2 times its key derivation with the CPU clock and now and then gives up with
    // "Unable to get accurate CPU usage"; the fixture is retried, the behaviour is not.
    sh(
        dir.path(),
        "for try in 1 2 3 4 5; do
           qemu-img create -q -f qcow2 --object secret,id=s0,data=pw \
             -o encrypt.format=luks,encrypt.key-secret=s0 enc.qcow2 1M && exit 0
         done; exit 1",
    );
    let out = run(&["inspect", &path(dir.path(), "enc.qcow2")]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("encrypted"), "{}", text(&out));
}

#[test]
fn tarballs_are_refused_with_a_hint_to_extract() {
    let dir = scratch();
    build(dir.path());
    sh(
        dir.path(),
        "tar -cf images.tar disk.img; zstd -q -c images.tar > images.tar.zst
         cp images.tar looks-like.img; cp images.tar.zst looks-like.img.zst",
    );
    for file in ["images.tar", "images.tar.zst", "looks-like.img", "looks-like.img.zst"] {
        let out = run(&["inspect", &path(dir.path(), file)]);
        assert_eq!(out.status.code(), Some(2), "{file}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("is a tar archive; extract it first (tar -xf"), "{file}: {err}");
    }
}

#[test]
fn an_unrecognised_file_is_refused_with_the_supported_formats() {
    let dir = scratch();
    std::fs::write(dir.path().join("notes.txt"), "not a disk image\n").unwrap();
    let out = run(&["inspect", &path(dir.path(), "notes.txt")]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unrecognised image format") && err.contains(".qcow2"), "{err}");
}

/// `bty flash /dev/stdin TARGET --yes` with `image` written into a real pipe on stdin.
fn flash_from_a_pipe(image: &Path, target: &Path) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = bty()
        .args(["flash", "/dev/stdin", target.to_str().unwrap(), "--yes"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting bty flash");
    let bytes = std::fs::read(image).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // bty may stop reading early (a refusal); a broken pipe is its answer, not a failure here.
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&bytes);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

#[test]
fn a_pipe_flashes_every_stream_format_whole_and_a_qcow2_is_refused() {
    let dir = scratch();
    let disk = build(dir.path());
    let want = sha256sum(&disk);
    for v in VARIANTS.iter().filter(|v| !v.file.ends_with(".qcow2")) {
        let target = dir.path().join(format!("from-pipe-{}", v.file));
        let out = flash_from_a_pipe(&dir.path().join(v.file), &target);
        assert!(out.status.success(), "{}: {}", v.file, text(&out));
        // Format detection reads the first bytes; the flash must still get every one of them.
        assert_eq!(sha256sum(&target), want, "{} through a pipe", v.file);
    }
    let out = flash_from_a_pipe(&dir.path().join("plain.qcow2"), &dir.path().join("q"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("seekable"), "{}", text(&out));
}

#[test]
fn a_qcow2_cut_inside_its_last_data_cluster_fails() {
    let dir = scratch();
    build(dir.path());
    // Where the last stored data ends, as qemu-img itself maps the file.
    let map = std::process::Command::new("qemu-img")
        .args(["map", "--output=json", &path(dir.path(), "plain.qcow2")])
        .output()
        .expect("running qemu-img map");
    let extents: serde_json::Value = serde_json::from_slice(&map.stdout).expect("qemu-img map JSON");
    let n = |e: &serde_json::Value, k: &str| e[k].as_u64().unwrap();
    let last = extents
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"] == true)
        .max_by_key(|e| n(e, "offset") + n(e, "length"))
        .expect("the fixture stores data");
    let end = n(last, "offset") + n(last, "length");
    // The disk offset whose data the cut takes away first.
    let stops_at = n(last, "start") + n(last, "length") - 1000;
    // Cut 1000 bytes short of that end: the last cluster's tail is gone.
    sh(dir.path(), &format!("head -c {} plain.qcow2 > cut.qcow2", end - 1000));
    let out = run(&["inspect", "--decoded-hash", &path(dir.path(), "cut.qcow2")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("truncated"), "{}", text(&out));
    let target = path(dir.path(), "target");
    let out = run(&["flash", &path(dir.path(), "cut.qcow2"), &target, "--yes"]);
    assert_eq!(out.status.code(), Some(1), "a cut qcow2 flashed: {}", text(&out));
    assert!(text(&out).contains(&format!("at offset {stops_at}:")), "want offset {stops_at}: {}", text(&out));
}
