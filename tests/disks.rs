//! Black-box tests of `bty disks` on the real sysfs: JSON shape, loop devices only with
//! `--all`, mounts attributed to the disk. Unit tests in `src/disk/` cover the fake-sysfs cases
//! (nvme, sata, usb, virtio, mmc, dm over partitions).

mod common;
use common::*;
use std::process::Command;

fn disks_json(args: &[&str]) -> serde_json::Value {
    let out = run(&[&["disks", "--json"], args].concat());
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out)));
    assert_eq!(v["schema_version"], 1);
    v
}

fn find<'a>(v: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    v["disks"].as_array().unwrap().iter().find(|d| d["path"] == path)
}

#[test]
fn loop_devices_are_listed_only_with_all_and_carry_their_mounts() {
    if !can_use_loop_devices() {
        eprintln!("skipping: needs root and /dev/loop-control");
        return;
    }
    let dir = scratch();
    let backing = dir.path().join("ext4.img");
    std::fs::write(&backing, vec![0u8; 8 << 20]).unwrap();
    assert!(Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4"])
        .arg(&backing)
        .status()
        .unwrap()
        .success());
    let dev = LoopDevice::attach(&backing);
    let path = dev.path.to_str().unwrap();

    assert!(find(&disks_json(&[]), path).is_none(), "a loop device is listed without --all");
    let all = disks_json(&["--all"]);
    let d = find(&all, path).unwrap_or_else(|| panic!("{path} missing from --all: {all}"));
    assert_eq!(d["transport"], "loop");
    assert_eq!(d["size_bytes"], 8 << 20);
    assert_eq!(d["size_human"], "8.0 MiB");
    assert_eq!(d["holds_running_system"], false);
    assert_eq!(d["refusal"], serde_json::Value::Null);

    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    assert!(Command::new("mount").arg(&dev.path).arg(&mnt).status().unwrap().success());
    let all = disks_json(&["--all"]);
    let _ = Command::new("umount").arg(&mnt).status();
    let d = find(&all, path).unwrap();
    assert_eq!(d["mountpoints"], serde_json::json!([mnt.to_str().unwrap()]));
    assert!(d["refusal"].as_str().unwrap_or("").contains("unmount it first"), "{d}");
}

#[test]
fn the_table_lists_the_disk_the_system_runs_from_as_such() {
    let out = run(&["disks", "--all"]);
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("PATH"), "{table}");
    let json = disks_json(&["--all"]);
    for d in json["disks"].as_array().unwrap() {
        let line = table
            .lines()
            .find(|l| l.starts_with(d["path"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("{d} not in {table}"));
        assert_eq!(line.contains("SYSTEM"), d["holds_running_system"] == true, "{line}");
    }
}
