//! `bty inspect`, black-box: the text and JSON reports, partition tables made by `sgdisk`
//! (GPT at 512- and 4096-byte sectors, MBR), digests checked against `sha256sum`, exit codes.

mod common;
mod image_fixture;

use common::*;
use image_fixture::{build, sh, DISK_SIZE};
use std::path::Path;
use std::process::Command;

fn inspect_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["inspect", "--json"];
    all.extend_from_slice(args);
    let out = run(&all);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", text(&out)))
}

/// A line of `sgdisk` output after `label`, lower-cased (sgdisk prints GUIDs upper-case).
fn sgdisk_field(args: &[&str], disk: &Path, label: &str) -> String {
    let out = Command::new("sgdisk").args(args).arg(disk).output().expect("running sgdisk");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label} in {stdout}"));
    line.trim().to_lowercase()
}

#[test]
fn json_reports_the_gpt_that_sgdisk_wrote() {
    let dir = scratch();
    let disk = build(dir.path());
    let found = inspect_json(&[disk.to_str().unwrap()]);
    assert_eq!(found["schema_version"], 1);
    assert_eq!(found["format"], "raw");
    assert_eq!(found["compressed_size"], DISK_SIZE);
    assert_eq!(found["virtual_size"], DISK_SIZE);
    assert_eq!(found["sha256"], serde_json::Value::Null, "no digest without --hash");
    let table = &found["partition_table"];
    assert_eq!(table["kind"], "gpt");
    assert_eq!(table["sector_size"], 512);
    assert_eq!(table["warnings"], serde_json::json!([]));
    assert_eq!(table["disk_guid"], sgdisk_field(&["-p"], &disk, "Disk identifier (GUID):").as_str());
    let parts = table["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    let expect =
        [(1, "EFI", "EFI System", 1u64 << 20, 1u64 << 20), (2, "root", "Linux filesystem", 2 << 20, 3 << 20)];
    for (p, (index, name, type_name, start, size)) in parts.iter().zip(expect) {
        assert_eq!(p["index"], index);
        assert_eq!(p["name"], name);
        assert_eq!(p["type_name"], type_name);
        assert_eq!((p["start"].as_u64(), p["size"].as_u64()), (Some(start), Some(size)));
        let n = index.to_string();
        assert_eq!(p["guid"], sgdisk_field(&["-i", &n], &disk, "Partition unique GUID:").as_str());
        let type_line = sgdisk_field(&["-i", &n], &disk, "Partition GUID code:");
        assert!(type_line.starts_with(p["type_id"].as_str().unwrap()), "{type_line} vs {}", p["type_id"]);
    }
}

#[test]
fn the_partition_table_is_read_through_every_decoder() {
    let dir = scratch();
    build(dir.path());
    for file in ["disk.img.xz", "zstd.qcow2", "disk.img.bz2"] {
        let found = inspect_json(&[dir.path().join(file).to_str().unwrap()]);
        let names: Vec<_> = found["partition_table"]["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["EFI", "root"], "{file}");
    }
}

#[test]
fn text_output_lists_facts_and_partitions() {
    let dir = scratch();
    build(dir.path());
    let out = run(&["inspect", dir.path().join("zlib.qcow2").to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "format          qcow2",
        "qcow2           version 3, 64.0 KiB clusters, zlib compression",
        "virtual size    6291456 bytes (6.0 MiB)",
        "partitions      gpt, 512-byte sectors",
        "EFI System",
        "Linux filesystem",
        "root",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in\n{stdout}");
    }
}

#[test]
fn hash_is_the_sha256_of_the_stored_bytes() {
    let dir = scratch();
    build(dir.path());
    let file = dir.path().join("disk.img.zst");
    let found = inspect_json(&["--hash", "--decoded-hash", file.to_str().unwrap()]);
    assert_eq!(found["sha256"], sha256sum(&file).as_str());
    assert_eq!(found["decoded_sha256"], sha256sum(&dir.path().join("disk.img")).as_str());
    let qcow2 = dir.path().join("zstd.qcow2");
    let found = inspect_json(&["--hash", qcow2.to_str().unwrap()]);
    assert_eq!(found["sha256"], sha256sum(&qcow2).as_str());
}

#[test]
fn an_mbr_made_from_the_gpt_is_reported() {
    let dir = scratch();
    let disk = build(dir.path());
    sh(dir.path(), "sgdisk -m 1:2 disk.img >/dev/null");
    let table = &inspect_json(&[disk.to_str().unwrap()])["partition_table"];
    assert_eq!(table["kind"], "mbr", "{table}");
    let parts = table["partitions"].as_array().unwrap();
    assert_eq!((parts[0]["type_id"].as_str(), parts[0]["start"].as_u64()), (Some("0xef"), Some(1 << 20)));
    assert_eq!((parts[1]["type_id"].as_str(), parts[1]["type_name"].as_str()), (Some("0x83"), Some("Linux")));
    assert_eq!(parts[1]["size"], 3 << 20);
}

#[test]
fn a_gpt_with_4096_byte_sectors_is_found() {
    if !can_use_loop_devices() {
        eprintln!("skipped: needs root and loop devices");
        return;
    }
    let dir = scratch();
    let disk = dir.path().join("4k.img");
    sh(dir.path(), "truncate -s 16M 4k.img");
    {
        // sgdisk takes the sector size from the device it writes to.
        let out = Command::new("losetup")
            .args(["--find", "--show", "--sector-size", "4096"])
            .arg(&disk)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let dev = LoopDevice { path: String::from_utf8_lossy(&out.stdout).trim().into() };
        let out = Command::new("sgdisk").args(["-n1:256:+4M", "-c1:data"]).arg(&dev.path).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    let table = &inspect_json(&[disk.to_str().unwrap()])["partition_table"];
    assert_eq!((table["kind"].as_str(), table["sector_size"].as_u64()), (Some("gpt"), Some(4096)), "{table}");
    let p = &table["partitions"][0];
    assert_eq!(
        (p["name"].as_str(), p["start"].as_u64(), p["size"].as_u64()),
        (Some("data"), Some(1 << 20), Some(4 << 20))
    );
}

#[test]
fn a_block_device_is_inspected_as_a_raw_disk() {
    if !can_use_loop_devices() {
        eprintln!("skipped: needs root and loop devices");
        return;
    }
    let dir = scratch();
    let disk = build(dir.path());
    let dev = LoopDevice::attach(&disk);
    let found = inspect_json(&["--decoded-hash", dev.path.to_str().unwrap()]);
    assert_eq!((found["format"].as_str(), found["virtual_size"].as_u64()), (Some("raw"), Some(DISK_SIZE)));
    assert_eq!(found["decoded_sha256"], sha256sum(&disk).as_str());
    assert_eq!(found["partition_table"]["partitions"][1]["name"], "root");
}

#[test]
fn an_image_without_a_partition_table_says_none() {
    let dir = scratch();
    let file = dir.path().join("blank.img");
    std::fs::write(&file, vec![0u8; 1 << 20]).unwrap();
    let found = inspect_json(&[file.to_str().unwrap()]);
    assert_eq!(found["partition_table"], serde_json::Value::Null);
    let out = run(&["inspect", file.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("partitions      none found"), "{}", text(&out));
}

#[test]
fn format_overrides_detection() {
    let dir = scratch();
    build(dir.path());
    let file = dir.path().join("disk.img.zst");
    let found = inspect_json(&["--format", "raw", file.to_str().unwrap()]);
    assert_eq!(found["format"], "raw");
    assert_eq!(found["virtual_size"], std::fs::metadata(&file).unwrap().len());
    let out = run(&["inspect", "--format", "vmdk", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn a_missing_file_fails_naming_it() {
    let out = run(&["inspect", "/nonexistent/disk.img"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/disk.img"), "{}", text(&out));
}

#[test]
fn help_describes_the_flags() {
    let out = run(&["inspect", "--help"]);
    assert!(out.status.success(), "{}", text(&out));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--json", "--hash", "--decoded-hash", "--format"] {
        assert!(help.contains(flag), "{help}");
    }
}
