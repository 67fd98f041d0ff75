//! Black-box tests of `bty flash`: every format onto files and loop devices, zero runs over old
//! data, crash-safe ordering after failures, safety refusals, delta, verify, cancel, ENOSPC.
//!
//! Images are built here (a disk-like layout: a boot sector, scattered data, long zero runs, an
//! unaligned tail) and compressed with the real zstd/gzip/xz/bzip2/qemu-img tools. Results are
//! checked with `sha256sum` and `cmp`, never with bty itself. Loop-device tests need root.

mod common;
use common::*;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const MIB: u64 = 1 << 20;
/// The test image's size: not a multiple of 4 KiB, so the unaligned tail path runs too.
const IMAGE_LEN: u64 = 20 * MIB + 25 * 512;

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Writes a disk-like raw image: data in the first MiB (a "boot sector"), scattered chunks of
/// various sizes, zeros elsewhere, and data in the unaligned last bytes.
fn disk_image(path: &Path, len: u64) {
    let mut img = vec![0u8; len as usize];
    let chunks: [(u64, usize); 5] = [
        (0, 70_000),
        (MIB + 4096, 300_000),
        (3 * MIB + 4096, 1 << 20),
        (9 * MIB, 70 * 1024),
        (len - 5000, 5000),
    ];
    for (i, (at, n)) in chunks.into_iter().enumerate().filter(|(_, (at, n))| at + *n as u64 <= len) {
        img[at as usize..at as usize + n].copy_from_slice(&noise(n, 7 + i as u64));
    }
    fs::write(path, img).unwrap();
}

/// The bytes of `image` in `from..to` that lie in all-zero 64 KiB blocks (the engine's unit
/// of comparison; `from` is a multiple of it).
fn zero_blocks(image: &Path, from: u64, to: u64) -> u64 {
    let bytes = fs::read(image).unwrap();
    let to = to.min(bytes.len() as u64);
    bytes[from as usize..to as usize]
        .chunks(64 * 1024)
        .filter(|b| b.iter().all(|&x| x == 0))
        .map(|b| b.len() as u64)
        .sum()
}

/// What `--delta` reports for `image` (of `len` bytes) onto a target that differs from it in
/// `changed` 64 KiB data blocks and on which `zeroed` bytes of the zero runs past the first MiB
/// are zeroed (found different, or zeroed unread), as (bytes_written, bytes_zeroed,
/// bytes_unchanged). Once anything changes, the first MiB is zeroed first and rewritten last,
/// so it counts as written and zeroed rather than unchanged.
fn expected_delta(image: &Path, len: u64, changed: u64, zeroed: u64) -> (u64, u64, u64) {
    if changed == 0 && zeroed == 0 {
        return (0, 0, len);
    }
    let head_zeros = zero_blocks(image, 0, MIB);
    let written = changed * 64 * 1024 + MIB - head_zeros;
    let zeroed = zeroed + head_zeros;
    (written, zeroed, len - written - zeroed)
}

/// Fills `path` (a file or device) with `len` random bytes, as a used disk would hold.
fn fill_random(path: &Path, len: u64) {
    let f = fs::OpenOptions::new().write(true).create(true).truncate(false).open(path).unwrap();
    let mut w = std::io::BufWriter::new(f);
    for i in 0..len.div_ceil(MIB) {
        let n = MIB.min(len - i * MIB) as usize;
        w.write_all(&noise(n, 1000 + i)).unwrap();
    }
    w.flush().unwrap();
    w.get_ref().sync_all().unwrap();
}

/// Compresses `raw` into `format` with the real tool; returns the new file.
fn encode(raw: &Path, format: &str) -> PathBuf {
    let out = raw.with_extension(format!("img.{format}"));
    let status = match format {
        "raw" => return raw.to_path_buf(),
        // The same raw image with its zeros as holes, as image builders leave it.
        "sparse" => {
            let out = raw.with_extension("sparse.img");
            fs::copy(raw, &out).unwrap();
            let status = Command::new("fallocate").arg("--dig-holes").arg(&out).status();
            assert!(status.expect("running fallocate").success(), "fallocate --dig-holes failed");
            return out;
        }
        "qcow2" | "qcow2c" => {
            let out = raw.with_extension(format!("{format}.qcow2"));
            let mut cmd = Command::new("qemu-img");
            cmd.args(["convert", "-q", "-f", "raw", "-O", "qcow2"]);
            if format == "qcow2c" {
                cmd.arg("-c");
            }
            let status = cmd.arg(raw).arg(&out).status().expect("running qemu-img");
            assert!(status.success(), "qemu-img failed");
            return out;
        }
        _ => {
            let tool = match format {
                "zst" => "zstd -q -c",
                "gz" => "gzip -c",
                "xz" => "xz -T1 -0 -c",
                "bz2" => "bzip2 -c",
                other => panic!("unknown format {other}"),
            };
            Command::new("sh")
                .arg("-c")
                .arg(format!("{tool} '{}' > '{}'", raw.display(), out.display()))
                .status()
                .expect("running the compressor")
        }
    };
    assert!(status.success(), "compressing to {format} failed");
    out
}

fn flash(args: &[&str]) -> std::process::Output {
    bty().arg("flash").args(args).stdin(Stdio::null()).output().expect("running bty flash")
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The final JSON result object of `bty flash --json`.
fn result_json(out: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {}", text(out)))
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A loop device over a scratch file of `len` random bytes.
fn random_loop(dir: &Path, name: &str, len: u64) -> LoopDevice {
    let backing = dir.join(name);
    fill_random(&backing, len);
    LoopDevice::attach(&backing)
}

fn loops_or_skip() -> bool {
    if !can_use_loop_devices() {
        eprintln!("skipping: needs root and /dev/loop-control");
        return false;
    }
    true
}

#[test]
fn every_format_round_trips_onto_a_file_full_of_old_data() {
    let dir = scratch();
    let raw = dir.path().join("disk.img");
    disk_image(&raw, IMAGE_LEN);
    let want = sha256sum(&raw);
    for format in ["raw", "sparse", "zst", "gz", "xz", "bz2", "qcow2", "qcow2c"] {
        let src = encode(&raw, format);
        let target = dir.path().join(format!("target-{format}"));
        fill_random(&target, IMAGE_LEN + 3 * MIB);
        // A raw file is read through its holes only when it is not hashed.
        let hash = if format == "sparse" { "--json" } else { "--hash" };
        let out = flash(&[p(&src), p(&target), "--yes", "--json", hash]);
        assert!(out.status.success(), "{format}: {}", text(&out));
        assert_eq!(sha256sum(&target), want, "{format}: target differs from the image");
        let result = result_json(&out);
        assert_eq!(result["event"], "result", "{format}");
        assert_eq!(result["schema_version"], 1, "{format}");
        assert_eq!(result["image_bytes"], IMAGE_LEN, "{format}");
        assert!(
            result["bytes_zeroed"].as_u64().unwrap() > 10 * MIB,
            "{format}: zero runs were copied: {result}"
        );
        assert!(result["bytes_written"].as_u64().unwrap() < 3 * MIB, "{format}: {result}");
        let digest = if format == "sparse" { String::new() } else { sha256sum(&src) };
        assert_eq!(result["source_sha256"], digest, "{format}");
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{format}: not JSON ({e}): {l}")))
            .collect();
        assert_eq!(lines[0]["event"], "progress", "{format}");
        assert!(lines.iter().all(|l| l["schema_version"] == 1), "{format}: {lines:?}");
    }
    // A refusal before the first byte is a JSON line too.
    let out = flash(&[p(&raw), p(dir.path()), "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let error = result_json(&out);
    assert_eq!((error["event"].as_str(), error["exit_code"].as_i64()), (Some("error"), Some(3)), "{error}");
    assert_eq!(error["schema_version"], 1);
}

#[test]
fn zero_runs_really_zero_a_loop_device_full_of_old_data() {
    if !loops_or_skip() {
        return;
    }
    let dir = scratch();
    let raw = dir.path().join("disk.img");
    disk_image(&raw, IMAGE_LEN);
    let dev = random_loop(dir.path(), "backing", 24 * MIB);
    for format in ["raw", "sparse", "zst"] {
        fill_random(&dev.path, 24 * MIB);
        let src = encode(&raw, format);
        let out = flash(&[p(&src), p(&dev.path), "--yes", "--json"]);
        assert!(out.status.success(), "{format}: {}", text(&out));
        assert_eq!(
            sha256_prefix(&dev.path, IMAGE_LEN),
            sha256sum(&raw),
            "{format}: device differs from the image"
        );
        assert!(result_json(&out)["bytes_zeroed"].as_u64().unwrap() > 10 * MIB, "{format}");
    }
}

#[test]
fn truncated_and_corrupt_images_fail_without_leaving_a_bootable_head() {
    let dir = scratch();
    let raw = dir.path().join("disk.img");
    disk_image(&raw, IMAGE_LEN);
    let head = sha256_prefix(&raw, MIB);
    for format in ["zst", "gz", "xz", "bz2", "qcow2"] {
        let good_path = encode(&raw, format);
        let good_digest = sha256sum(&good_path);
        let good = fs::read(&good_path).unwrap();
        let mut corrupt = good.clone();
        let mid = corrupt.len() / 2;
        for b in &mut corrupt[mid..mid + 64] {
            *b ^= 0x5a;
        }
        let mut cases = vec![("truncated", good[..good.len() * 3 / 4].to_vec())];
        // qcow2 carries no checksums: flipped data bytes decode "fine", so only truncation is tested.
        if format != "qcow2" {
            cases.push(("corrupt", corrupt));
        }
        for (what, bytes) in cases {
            let src = dir.path().join(format!("{what}.img.{format}"));
            fs::write(&src, bytes).unwrap();
            let target = dir.path().join(format!("target-{what}-{format}"));
            fill_random(&target, IMAGE_LEN);
            let out = flash(&[p(&src), p(&target), "--yes"]);
            let code = out.status.code();
            assert!(code != Some(0) && code.is_some(), "{what} {format}: {}", text(&out));
            assert!(stderr(&out).contains("bty: error:"), "{what} {format}: {}", text(&out));
            assert_ne!(sha256_prefix(&target, MIB), head, "{what} {format}: the target looks bootable");

            // With the good image's digest named, the damage is reported as what it is: not
            // the bytes that were named (exit 4). With the damaged bytes' own digest, the
            // digest holds and the decoder's complaint stands (exit 1).
            let out = flash(&[p(&src), p(&target), "--yes", "--sha256", &good_digest]);
            assert_eq!(out.status.code(), Some(4), "{what} {format}: {}", text(&out));
            assert!(stderr(&out).contains("reading it failed"), "{what} {format}: {}", text(&out));
            let out = flash(&[p(&src), p(&target), "--yes", "--sha256", &sha256sum(&src)]);
            assert_eq!(out.status.code(), Some(1), "{what} {format}: {}", text(&out));
            assert_ne!(sha256_prefix(&target, MIB), head, "{what} {format}: the target looks bootable");
        }
    }
}

/// Runs `command path` on drop (`umount`, `swapoff`), so a failing assertion does not leave a
/// mount or an active swap behind.
struct Undo(&'static str, PathBuf);
impl Drop for Undo {
    fn drop(&mut self) {
        let _ = Command::new(self.0).arg(&self.1).status();
    }
}

#[test]
fn a_mounted_loop_device_is_refused_and_left_untouched() {
    if !loops_or_skip() {
        return;
    }
    let dir = scratch();
    let fs_file = dir.path().join("ext4.img");
    fs::write(&fs_file, vec![0u8; 16 << 20]).unwrap();
    assert!(Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4"])
        .arg(&fs_file)
        .status()
        .unwrap()
        .success());
    let dev = LoopDevice::attach(&fs_file);
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    assert!(Command::new("mount").arg(&dev.path).arg(&mnt).status().unwrap().success());
    let _mounted = Undo("umount", mnt.clone());
    let before = sha256sum(&dev.path);
    let raw = dir.path().join("disk.img");
    disk_image(&raw, 8 * MIB);
    let out = flash(&[p(&raw), p(&dev.path), "--yes"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(stderr(&out).contains("in use") && stderr(&out).contains(p(&mnt)), "{}", text(&out));
    assert_eq!(sha256sum(&dev.path), before, "the mounted device was modified");
    // The file behind the mounted loop device is the same filesystem under another name.
    let out = flash(&[p(&raw), p(&fs_file), "--yes"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(stderr(&out).contains("it backs") && stderr(&out).contains(p(&mnt)), "{}", text(&out));
    assert_eq!(sha256sum(&dev.path), before, "the mounted device's backing file was modified");
}

#[test]
fn a_loop_device_in_use_as_swap_is_refused_with_the_fix() {
    if !loops_or_skip() {
        return;
    }
    let dir = scratch();
    let dev = random_loop(dir.path(), "swap", 16 * MIB);
    assert!(Command::new("mkswap").arg(&dev.path).output().unwrap().status.success());
    if !Command::new("swapon").arg(&dev.path).status().unwrap().success() {
        eprintln!("skipping: swapon is not allowed here");
        return;
    }
    let _swapping = Undo("swapoff", dev.path.clone());
    let raw = dir.path().join("disk.img");
    disk_image(&raw, IMAGE_LEN);
    let before = sha256sum(&dev.path);
    for dry_run in [true, false] {
        let mut args = vec![p(&raw), p(&dev.path), "--yes"];
        args.extend(dry_run.then_some("--dry-run"));
        let out = flash(&args);
        assert_eq!(out.status.code(), Some(3), "dry run {dry_run}: {}", text(&out));
        assert!(stderr(&out).contains("[SWAP]") && stderr(&out).contains("swapoff"), "{}", text(&out));
    }
    assert_eq!(sha256sum(&dev.path), before, "the swap device was modified");
}

#[test]
fn an_image_larger_than_the_target_is_refused_before_any_write() {
    if !loops_or_skip() {
        return;
    }
    let dir = scratch();
    let dev = random_loop(dir.path(), "small", 8 * MIB);
    let before = sha256sum(&dev.path);
    let raw = dir.path().join("disk.img");
    disk_image(&raw, IMAGE_LEN);
    let out = flash(&[p(&raw), p(&dev.path), "--yes"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(stderr(&out).contains("pick a larger disk"), "{}", text(&out));
    assert_eq!(sha256sum(&dev.path), before, "the device was written although the image does not fit");
}

#[test]
fn an_image_of_unknown_size_that_does_not_fit_fails_while_writing() {
    if !loops_or_skip() {
        return;
    }
    let dir = scratch();
    let dev = random_loop(dir.path(), "small", 8 * MIB);
    let raw = dir.path().join("disk.img");
    disk_image(&raw, IMAGE_LEN);
    let gz = encode(&raw, "gz"); // gzip records no usable size
    let out = flash(&[p(&gz), p(&dev.path), "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("does not fit"), "{}", text(&out));
    assert_ne!(sha256_prefix(&dev.path, MIB), sha256_prefix(&raw, MIB), "the target looks bootable");
}

#[test]
fn an_image_of_unknown_size_whose_gpt_does_not_fit_is_refused_before_any_write() {
    if !loops_or_skip() {
        return;
    }
    let dir = scratch();
    let dev = random_loop(dir.path(), "small", 8 * MIB);
    let before = sha256sum(&dev.path);
    let raw = dir.path().join("disk.img");
    disk_image(&raw, IMAGE_LEN);
    // A GPT whose last partition ends near the end of the 16 MiB image.
    let status = Command::new("sgdisk").args(["-n1:2048:+12M", "-t1:8300"]).arg(&raw).output().unwrap();
    assert!(status.status.success(), "sgdisk: {}", text(&status));
    for format in ["gz", "bz2"] {
        let image = encode(&raw, format);
        for dry_run in [true, false] {
            let mut args = vec![p(&image), p(&dev.path), "--yes"];
            args.extend(dry_run.then_some("--dry-run"));
            let out = flash(&args);
            assert_eq!(out.status.code(), Some(3), "{format} dry run {dry_run}: {}", text(&out));
            assert!(stderr(&out).contains("pick a larger disk"), "{}", text(&out));
        }
        assert_eq!(sha256sum(&dev.path), before, "{format}: written although the image does not fit");
    }
}

/// `bty flash --delta --json` of `image` onto `target`; with `read_zeros`, the target is read
/// under the image's zero runs too, as on a device that cannot zero without a transfer.
fn delta(image: &Path, target: &Path, read_zeros: bool) -> serde_json::Value {
    let mut cmd = bty();
    cmd.args(["flash", p(image), p(target), "--yes", "--delta", "--json"]).stdin(Stdio::null());
    if read_zeros {
        cmd.env("BTY_TEST_DELTA_READS_ZEROS", "1");
    }
    let out = cmd.output().expect("running bty flash --delta");
    assert!(out.status.success(), "{}", text(&out));
    result_json(&out)
}

/// (bytes_written, bytes_zeroed, bytes_unchanged) of a result.
fn counts(r: &serde_json::Value) -> (u64, u64, u64) {
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} missing: {r}"));
    (n("bytes_written"), n("bytes_zeroed"), n("bytes_unchanged"))
}

#[test]
fn delta_writes_nothing_onto_an_identical_target_and_only_changed_blocks_otherwise() {
    let dir = scratch();
    let raw = dir.path().join("disk.img");
    disk_image(&raw, IMAGE_LEN);
    let sparse = encode(&raw, "sparse");
    // One changed byte in a data block and one in a zero run: one 64 KiB block each.
    let change = |target: &Path| {
        let f = fs::OpenOptions::new().write(true).open(target).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(&[0xee], 3 * MIB + 4096 + 10).unwrap();
        f.write_all_at(&[0xee], 15 * MIB + 3).unwrap();
    };
    let want = |changed, zeroed| expected_delta(&raw, IMAGE_LEN, changed, zeroed);
    for image in [&raw, &sparse] {
        let name = image.file_name().unwrap().to_string_lossy();
        let target = dir.path().join("target");
        assert!(flash(&[p(image), p(&target), "--yes"]).status.success());

        // Read everywhere: nothing differs, nothing is written; then exactly what differs is.
        assert_eq!(counts(&delta(image, &target, true)), (0, 0, IMAGE_LEN), "{name}");
        change(&target);
        assert_eq!(counts(&delta(image, &target, true)), want(1, 64 * 1024), "{name}");
        assert_eq!(sha256sum(&target), sha256sum(&raw), "{name}");

        // A file zeroes by punching holes, so its zero runs are not read: those that are holes
        // already are left alone, and only the filesystem block written into one is punched.
        assert_eq!(counts(&delta(image, &target, false)), (0, 0, IMAGE_LEN), "{name}");
        change(&target);
        let fs_block = std::os::unix::fs::MetadataExt::blksize(&fs::metadata(&target).unwrap());
        assert_eq!(counts(&delta(image, &target, false)), want(1, fs_block), "{name}");
        assert_eq!(sha256sum(&target), sha256sum(&raw), "{name}");

        // A changed first MiB is repaired too.
        let f = fs::OpenOptions::new().write(true).open(&target).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(&[0xee], 100).unwrap();
        drop(f);
        assert!(flash(&[p(image), p(&target), "--yes", "--delta"]).status.success());
        assert_eq!(sha256sum(&target), sha256sum(&raw), "{name}");
        fs::remove_file(&target).unwrap();
    }
}

#[test]
fn delta_onto_a_loop_device_skips_equal_blocks() {
    if !loops_or_skip() {
        return;
    }
    let dir = scratch();
    let raw = dir.path().join("disk.img");
    disk_image(&raw, IMAGE_LEN);
    let dev = random_loop(dir.path(), "backing", 24 * MIB);
    let first = delta(&raw, &dev.path, false);
    assert_eq!(sha256_prefix(&dev.path, IMAGE_LEN), sha256sum(&raw));
    let (written, _, unchanged) = counts(&first);
    assert!(written > MIB && unchanged == 0, "the random target was not written: {first}");
    // A loop device zeroes by punching holes in its backing file (when the backing
    // filesystem can): zero runs are zeroed unread; everything else is read and found equal.
    let name = dev.path.file_name().unwrap().to_string_lossy().into_owned();
    let limit = fs::read_to_string(format!("/sys/block/{name}/queue/write_zeroes_max_bytes")).unwrap();
    let zeroed_unread = if limit.trim() == "0" { 0 } else { zero_blocks(&raw, MIB, IMAGE_LEN) };
    let want = expected_delta(&raw, IMAGE_LEN, 0, zeroed_unread);
    assert_eq!(counts(&delta(&raw, &dev.path, false)), want);
    assert_eq!(counts(&delta(&raw, &dev.path, true)), (0, 0, IMAGE_LEN));
    // Old data in a zero run is zeroed either way.
    fill_random(&dev.path, 24 * MIB);
    delta(&raw, &dev.path, false);
    assert_eq!(sha256_prefix(&dev.path, IMAGE_LEN), sha256sum(&raw));
}

#[test]
fn a_sparse_image_larger_than_the_buffer_pool_round_trips_plain_and_delta() {
    // The engine recycles four 8 MiB buffers, so the chunks after the first 32 MiB land in
    // buffers that held data: a holey chunk there has old bytes under its holes, and any
    // consumer that read them instead of the layout would put them on the target.
    let len = 48 * MIB + 4096 + 512;
    let mut img = noise(32 * MIB as usize, 3);
    img.resize(len as usize, 0);
    for (at, n) in [(36 * MIB + 5000, 3000), (44 * MIB, 70_000), (len - 512, 512)] {
        img[at as usize..(at + n) as usize].copy_from_slice(&noise(n as usize, at));
    }
    let dir = scratch();
    let raw = dir.path().join("big.img");
    fs::write(&raw, &img).unwrap();
    let sparse = encode(&raw, "sparse");
    let want = sha256sum(&raw);
    let poke = |target: &Path| {
        let f = fs::OpenOptions::new().write(true).open(target).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(&[0xee], 10 * MIB + 7).unwrap();
        f.write_all_at(&[0xee], 40 * MIB + 7).unwrap();
    };
    let check = |target: &Path, what: &str| {
        assert_eq!(sha256_prefix(target, len), want, "{what}: the target differs from the image");
    };

    // A file target shorter than the image, full of old data.
    let file = dir.path().join("target");
    fill_random(&file, 40 * MIB);
    let _loop_dev = loops_or_skip().then(|| random_loop(dir.path(), "backing", 64 * MIB));
    let targets: Vec<&Path> =
        [Some(file.as_path()), _loop_dev.as_ref().map(|d| d.path.as_path())].into_iter().flatten().collect();
    for target in targets {
        let name = target.display().to_string();
        assert!(flash(&[p(&sparse), p(target), "--yes", "--verify"]).status.success(), "{name}");
        check(target, &format!("{name} plain"));
        for read_zeros in [false, true] {
            poke(target);
            delta(&sparse, target, read_zeros);
            check(target, &format!("{name} delta, zero runs read: {read_zeros}"));
        }
    }
}

#[test]
fn verify_passes_on_a_good_flash_and_catches_a_block_changed_behind_the_engines_back() {
    let dir = scratch();
    let raw = dir.path().join("disk.img");
    disk_image(&raw, IMAGE_LEN);
    let mut targets = vec![(dir.path().join("target"), None)];
    if can_use_loop_devices() {
        let dev = random_loop(dir.path(), "backing", 24 * MIB);
        targets.push((dev.path.clone(), Some(dev)));
    }
    for (target, _dev) in &targets {
        let out = flash(&[p(&raw), p(target), "--yes", "--verify", "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(result_json(&out)["verified"], true);
        for (offset, expect) in
            [(3 * MIB + 4096 + 5, "between offsets 3145728 and"), (15 * MIB + 7, "at offset 15728647")]
        {
            let out = bty()
                .args(["flash", p(&raw), p(target), "--yes", "--verify"])
                .env("BTY_TEST_CORRUPT_AFTER_WRITE", offset.to_string())
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(4), "{}", text(&out));
            assert!(
                stderr(&out).contains("verify failed") && stderr(&out).contains(expect),
                "{}",
                text(&out)
            );
            // A disk that failed its read-back must not boot as if it were good.
            assert!(stderr(&out).contains("does not boot"), "{}", text(&out));
            assert_ne!(
                sha256_prefix(target, MIB),
                sha256_prefix(&raw, MIB),
                "the failed target looks bootable"
            );
        }
    }
}

#[test]
fn a_wrong_sha256_exits_4_and_leaves_no_bootable_head() {
    let dir = scratch();
    let raw = dir.path().join("disk.img");
    disk_image(&raw, IMAGE_LEN);
    let zst = encode(&raw, "zst");
    let target = dir.path().join("target");
    let wrong = "0".repeat(64);
    let out = flash(&[p(&zst), p(&target), "--yes", "--sha256", &wrong]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(stderr(&out).contains("unverified data"), "{}", text(&out));
    assert_ne!(sha256_prefix(&target, MIB), sha256_prefix(&raw, MIB));
    let right = sha256sum(&zst);
    let out = flash(&[p(&zst), p(&target), "--yes", "--sha256", &right]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(sha256sum(&target), sha256sum(&raw));
    // A qcow2 image is read out of order; its digest is checked by a pass of its own.
    let qcow2 = encode(&raw, "qcow2");
    let out = flash(&[p(&qcow2), p(&target), "--yes", "--sha256", &wrong]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let out = flash(&[p(&qcow2), p(&target), "--yes", "--sha256", &sha256sum(&qcow2)]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(sha256sum(&target), sha256sum(&raw));
}

#[test]
fn the_source_is_hashed_only_when_a_digest_is_checked_or_asked_for() {
    let dir = scratch();
    let raw = dir.path().join("disk.img");
    disk_image(&raw, IMAGE_LEN);
    let target = dir.path().join("target");
    let want = sha256sum(&raw);
    for (extra, reported) in [(vec![], ""), (vec!["--hash"], want.as_str()), (vec!["--sha256", &want], &want)]
    {
        let mut args = vec![p(&raw), p(&target), "--yes", "--json"];
        args.extend(extra.iter().copied());
        let out = flash(&args);
        assert!(out.status.success(), "{extra:?}: {}", text(&out));
        assert_eq!(result_json(&out)["source_sha256"], reported, "{extra:?}");
        assert_eq!(sha256sum(&target), want, "{extra:?}");
    }
}

#[test]
fn an_image_is_never_flashed_onto_itself_under_any_name() {
    let dir = scratch();
    let raw = dir.path().join("disk.img");
    disk_image(&raw, IMAGE_LEN);
    let want = sha256sum(&raw);
    let link = dir.path().join("link.img");
    std::os::unix::fs::symlink(&raw, &link).unwrap();
    for target in [&raw, &link] {
        for extra in [None, Some("--dry-run")] {
            let mut args = vec![p(&raw), p(target), "--yes"];
            args.extend(extra);
            let out = flash(&args);
            assert_eq!(out.status.code(), Some(3), "{target:?} {extra:?}: {}", text(&out));
            assert!(stderr(&out).contains("lies inside the image being flashed"), "{}", text(&out));
        }
    }
    assert_eq!(sha256sum(&raw), want, "the image was changed");
}

#[test]
fn a_disk_and_its_own_partition_are_never_flashed_onto_each_other() {
    if !loops_or_skip() {
        return;
    }
    let dir = scratch();
    let dev = random_loop(dir.path(), "backing", 24 * MIB);
    let part = Partition::add(&dev.path);
    let before = sha256sum(&dev.path);
    for (src, dst) in [(&part.path, &dev.path), (&dev.path, &part.path)] {
        let out = flash(&[p(src), p(dst), "--yes", "--format", "raw"]);
        assert_eq!(out.status.code(), Some(3), "{src:?} onto {dst:?}: {}", text(&out));
        assert!(stderr(&out).contains("lies inside the image being flashed"), "{}", text(&out));
    }
    assert_eq!(sha256sum(&dev.path), before, "the disk was changed");
}

/// Partition 1 (sectors 2048..10240) of a loop device, deleted on drop: the kernel here reads
/// no partition tables, so BLKPG (addpart) adds the device directly, and a loop device keeps
/// it even after it is detached.
struct Partition {
    disk: PathBuf,
    path: PathBuf,
}

impl Partition {
    fn add(disk: &Path) -> Partition {
        let _ = Command::new("delpart").arg(disk).arg("1").stderr(Stdio::null()).status();
        let status = Command::new("addpart").arg(disk).args(["1", "2048", "8192"]).status();
        assert!(status.expect("running addpart").success(), "addpart {disk:?} failed");
        Partition { disk: disk.to_path_buf(), path: PathBuf::from(format!("{}p1", disk.display())) }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        let _ = Command::new("delpart").arg(&self.disk).arg("1").status();
    }
}

#[test]
fn sigint_mid_flash_exits_130_and_says_how_far_it_got() {
    let dir = scratch();
    let fifo = dir.path().join("slow.img");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let target = dir.path().join("target");
    let mut child = bty()
        .args(["flash", p(&fifo), p(&target), "--yes", "--json", "--format", "raw"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The feeder gives 20 MiB, then holds the pipe open without writing: the flash can get
    // no further than two 8 MiB chunks, whatever the machine's speed.
    let feeder_path = fifo.clone();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let feeder = std::thread::spawn(move || {
        let mut w = fs::OpenOptions::new().write(true).open(&feeder_path).unwrap();
        let _ = w.write_all(&noise(20 << 20, 3));
        let _ = done_rx.recv();
    });
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let started = lines.by_ref().map_while(Result::ok).any(|line| {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        v["event"] == "progress" && v["bytes_written"].as_u64().unwrap_or(0) >= 16 * MIB
    });
    assert!(started, "no progress event showed the first chunks written");
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    let _ = done_tx.send(());
    let _ = feeder.join();
    assert_eq!(status.code(), Some(130), "stderr: {err}");
    assert!(err.contains("cancelled after 16777216 bytes at offset 16777216"), "stderr: {err}");
    assert!(err.contains("incomplete and not bootable"), "stderr: {err}");
}

#[test]
fn sigterm_while_the_source_is_still_being_read_for_its_format_exits_130_untouched() {
    let dir = scratch();
    let fifo = dir.path().join("silent.img");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let target = dir.path().join("target");
    fs::write(&target, b"old").unwrap();
    let mut child = bty()
        .args(["flash", p(&fifo), p(&target), "--yes"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The feeder opens the pipe and writes nothing: bty waits in format detection. Its open
    // returns once bty has opened the pipe, which is after bty installed its handlers.
    let feeder_path = fifo.clone();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let (opened_tx, opened_rx) = std::sync::mpsc::channel::<()>();
    let feeder = std::thread::spawn(move || {
        let _w = fs::OpenOptions::new().write(true).open(&feeder_path).unwrap();
        let _ = opened_tx.send(());
        let _ = done_rx.recv();
    });
    opened_rx.recv().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    // A bty that only noted the signal would wait on the pipe for ever: give it 10 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = done_tx.send(());
    let _ = feeder.join();
    let status = status.expect("bty was still waiting on its source 10 s after SIGTERM");
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert_eq!(fs::read(&target).unwrap(), b"old", "the target was touched");
}

#[test]
fn running_out_of_space_names_the_target_and_offset() {
    if !loops_or_skip() {
        return; // mounting a tmpfs needs root as well
    }
    let dir = scratch();
    let small = dir.path().join("small");
    fs::create_dir(&small).unwrap();
    assert!(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap()
        .success());
    let _mounted = Undo("umount", small.clone());
    let raw = dir.path().join("disk.img");
    disk_image(&raw, IMAGE_LEN);
    let target = small.join("target");
    let out = flash(&[p(&raw), p(&target), "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("writing {} at offset", target.display())), "{}", text(&out));
    assert!(err.to_lowercase().contains("no space left on device"), "{}", text(&out));
}

#[test]
fn without_yes_and_without_a_terminal_nothing_is_written() {
    let dir = scratch();
    let raw = dir.path().join("disk.img");
    disk_image(&raw, 2 * MIB);
    let target = dir.path().join("target");
    let out = flash(&[p(&raw), p(&target)]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(stderr(&out).contains("pass --yes"), "{}", text(&out));
    assert!(!target.exists());
}

#[test]
fn dry_run_checks_and_writes_nothing() {
    let dir = scratch();
    let raw = dir.path().join("disk.img");
    disk_image(&raw, 2 * MIB);
    let target = dir.path().join("target");
    let out = flash(&[p(&raw), p(&target), "--dry-run", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(result_json(&out)["dry_run"], true);
    assert!(!target.exists());
}

#[test]
fn directories_character_devices_and_unknown_formats_are_refused() {
    let dir = scratch();
    let raw = dir.path().join("disk.img");
    disk_image(&raw, 2 * MIB);
    for (target, what) in [(dir.path(), "a directory"), (Path::new("/dev/null"), "a character device")] {
        let out = flash(&[p(&raw), p(target), "--yes"]);
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        assert!(stderr(&out).contains(what), "{}", text(&out));
    }
    let odd = dir.path().join("notes.bin");
    fs::write(&odd, b"just some text, not a disk image").unwrap();
    let out = flash(&[p(&odd), p(&dir.path().join("t")), "--yes"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(stderr(&out).contains("unrecognised image format"), "{}", text(&out));
}
