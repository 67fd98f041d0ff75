//! The hardware summary the agent posts as the inventory's `lshw` field, read from sysfs, DMI
//! and /proc instead of running `lshw` (which an initramfs does not have).
//!
//! The shape follows `lshw -json` (a `system` node with `children`; `class`, `product`,
//! `vendor`, `serial`, `size`, `configuration`), so a consumer written for the Python bty's
//! lshw blobs finds the same keys: board under `core`, BIOS/UEFI under `firmware`, memory size
//! in bytes, one `processor` node, one `network` node per physical NIC with its MAC in
//! `serial`. Roots are parameters so tests use a fake tree. Disks are not here: they are the
//! inventory's `disks` list.

use serde_json::{json, Map, Value};
use std::path::Path;

fn read_trim(path: &Path) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim();
    // DMI fields on cheap boards say "To Be Filled By O.E.M." or "Default string": still
    // worth showing, the operator recognises them; only empty means absent.
    (!s.is_empty()).then(|| s.to_string())
}

/// Inserts `key: value` when the value is known.
fn put(map: &mut Map<String, Value>, key: &str, value: Option<impl Into<Value>>) {
    if let Some(v) = value {
        map.insert(key.to_string(), v.into());
    }
}

/// A physical network interface as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    /// Interface name (`eth0`, `enp1s0`).
    pub name: String,
    /// MAC address, lowercase with colons.
    pub mac: String,
    /// Kernel driver (`virtio_net`, `igb`), when bound.
    pub driver: Option<String>,
    /// Link speed in Mbit/s, when the link is up and the driver knows.
    pub speed_mbps: Option<u64>,
    /// Whether the link has carrier (only meaningful once the interface is up).
    pub carrier: bool,
}

/// Physical NICs under `sys/class/net` (those with a `device` link: no lo, bridges, taps),
/// sorted by name.
pub fn nics(sys: &Path) -> Vec<Nic> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(sys.join("class/net")) else { return out };
    for e in entries.flatten() {
        let dir = e.path();
        if !dir.join("device").exists() {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(mac) = read_trim(&dir.join("address")) else { continue };
        let driver = std::fs::read_link(dir.join("device/driver"))
            .ok()
            .and_then(|l| l.file_name().map(|n| n.to_string_lossy().into_owned()));
        let speed_mbps = read_trim(&dir.join("speed"))
            .and_then(|s| s.parse::<i64>().ok())
            .filter(|&s| s > 0)
            .map(|s| s as u64);
        let carrier = read_trim(&dir.join("carrier")).as_deref() == Some("1");
        out.push(Nic { name, mac: mac.to_ascii_lowercase(), driver, speed_mbps, carrier });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Whether the machine booted through UEFI (`sys/firmware/efi` exists) or legacy BIOS.
pub fn boot_firmware(sys: &Path) -> &'static str {
    if sys.join("firmware/efi").exists() {
        "uefi"
    } else {
        "bios"
    }
}

/// CPU model and logical CPU count from `/proc/cpuinfo` text.
fn cpu(cpuinfo: &str) -> (Option<String>, usize) {
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name") || l.starts_with("Model"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string());
    let count = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    (model, count)
}

/// `MemTotal` from `/proc/meminfo` text, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The summary, lshw-shaped. `sys` is usually `/sys`, `proc_root` usually `/proc`.
pub fn summary(sys: &Path, proc_root: &Path) -> Value {
    let dmi = |f: &str| read_trim(&sys.join("class/dmi/id").join(f));
    let firmware_kind = boot_firmware(sys);

    let mut firmware = Map::new();
    firmware.insert("id".into(), "firmware".into());
    firmware.insert("class".into(), "memory".into());
    firmware.insert("description".into(), if firmware_kind == "uefi" { "UEFI" } else { "BIOS" }.into());
    put(&mut firmware, "vendor", dmi("bios_vendor"));
    put(&mut firmware, "version", dmi("bios_version"));
    put(&mut firmware, "date", dmi("bios_date"));
    if firmware_kind == "uefi" {
        firmware.insert("capabilities".into(), json!({"uefi": "UEFI specification"}));
    }

    let mut children = vec![Value::Object(firmware)];
    let meminfo = std::fs::read_to_string(proc_root.join("meminfo")).unwrap_or_default();
    if let Some(bytes) = mem_total(&meminfo) {
        children.push(json!({"id": "memory", "class": "memory", "description": "System Memory", "units": "bytes", "size": bytes}));
    }
    let cpuinfo = std::fs::read_to_string(proc_root.join("cpuinfo")).unwrap_or_default();
    let (model, count) = cpu(&cpuinfo);
    let mut cpu_node = Map::new();
    cpu_node.insert("id".into(), "cpu".into());
    cpu_node.insert("class".into(), "processor".into());
    put(&mut cpu_node, "product", model);
    cpu_node.insert("configuration".into(), json!({"threads": count.to_string()}));
    children.push(Value::Object(cpu_node));
    for nic in nics(sys) {
        let mut node = Map::new();
        node.insert("id".into(), "network".into());
        node.insert("class".into(), "network".into());
        node.insert("logicalname".into(), nic.name.clone().into());
        node.insert("serial".into(), nic.mac.clone().into());
        let mut conf = Map::new();
        put(&mut conf, "driver", nic.driver.clone());
        conf.insert("link".into(), if nic.carrier { "yes" } else { "no" }.into());
        if let Some(mbps) = nic.speed_mbps {
            node.insert("units".into(), "bit/s".into());
            node.insert("size".into(), (mbps * 1_000_000).into());
            conf.insert("speed".into(), speed_text(mbps).into());
        }
        node.insert("configuration".into(), Value::Object(conf));
        children.push(Value::Object(node));
    }

    let mut core = Map::new();
    core.insert("id".into(), "core".into());
    core.insert("class".into(), "bus".into());
    core.insert("description".into(), "Motherboard".into());
    put(&mut core, "product", dmi("board_name"));
    put(&mut core, "vendor", dmi("board_vendor"));
    put(&mut core, "serial", dmi("board_serial"));
    core.insert("children".into(), Value::Array(children));

    let mut system = Map::new();
    put(&mut system, "id", read_trim(&proc_root.join("sys/kernel/hostname")));
    system.insert("class".into(), "system".into());
    system.insert("description".into(), "Computer".into());
    put(&mut system, "product", dmi("product_name"));
    put(&mut system, "vendor", dmi("sys_vendor"));
    put(&mut system, "serial", dmi("product_serial"));
    put(&mut system, "version", dmi("product_version"));
    let mut conf = Map::new();
    conf.insert("boot".into(), firmware_kind.into());
    put(&mut conf, "uuid", dmi("product_uuid"));
    system.insert("configuration".into(), Value::Object(conf));
    system.insert("children".into(), json!([Value::Object(core)]));
    Value::Object(system)
}

/// lshw's speed text: `1Gbit/s`, `100Mbit/s`, `2500Mbit/s`.
fn speed_text(mbps: u64) -> String {
    if mbps >= 1000 && mbps % 1000 == 0 {
        format!("{}Gbit/s", mbps / 1000)
    } else {
        format!("{mbps}Mbit/s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    /// A fake /sys + /proc: a UEFI Supermicro box with two NICs (one with link) and a bridge.
    fn fake_tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for (f, v) in [
            ("sys_vendor", "Supermicro\n"),
            ("product_name", "SYS-1029P\n"),
            ("product_serial", "S12345\n"),
            ("board_vendor", "Supermicro\n"),
            ("board_name", "X11DPU\n"),
            ("board_serial", "\n"),
            ("bios_vendor", "American Megatrends Inc.\n"),
            ("bios_version", "3.4\n"),
        ] {
            write(r, &format!("sys/class/dmi/id/{f}"), v);
        }
        fs::create_dir_all(r.join("sys/firmware/efi")).unwrap();
        write(r, "sys/devices/pci/0000:01:00.0/net/eno1/address", "AC:1F:6B:00:00:01\n");
        write(r, "sys/devices/pci/0000:01:00.0/net/eno1/speed", "1000\n");
        write(r, "sys/devices/pci/0000:01:00.0/net/eno1/carrier", "1\n");
        fs::create_dir_all(r.join("sys/bus/pci/drivers/igb")).unwrap();
        std::os::unix::fs::symlink(
            r.join("sys/bus/pci/drivers/igb"),
            r.join("sys/devices/pci/0000:01:00.0/driver"),
        )
        .unwrap();
        write(r, "sys/devices/pci/0000:01:00.1/net/eno2/address", "ac:1f:6b:00:00:02\n");
        write(r, "sys/devices/pci/0000:01:00.1/net/eno2/speed", "-1\n");
        write(r, "sys/devices/pci/0000:01:00.1/net/eno2/carrier", "0\n");
        fs::create_dir_all(r.join("sys/class/net")).unwrap();
        for (name, dev) in [("eno1", "0000:01:00.0"), ("eno2", "0000:01:00.1")] {
            let netdir = r.join(format!("sys/devices/pci/{dev}/net/{name}"));
            std::os::unix::fs::symlink(r.join(format!("sys/devices/pci/{dev}")), netdir.join("device"))
                .unwrap();
            std::os::unix::fs::symlink(&netdir, r.join(format!("sys/class/net/{name}"))).unwrap();
        }
        write(r, "sys/devices/virtual/net/br0/address", "02:00:00:00:00:09\n");
        std::os::unix::fs::symlink(r.join("sys/devices/virtual/net/br0"), r.join("sys/class/net/br0"))
            .unwrap();
        write(r, "proc/cpuinfo", "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Gold 6130\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Gold 6130\n");
        write(r, "proc/meminfo", "MemTotal:       16303296 kB\nMemFree: 1 kB\n");
        t
    }

    #[test]
    fn nics_lists_physical_interfaces_with_driver_speed_and_link() {
        let t = fake_tree();
        let got = nics(&t.path().join("sys"));
        assert_eq!(
            got,
            vec![
                Nic {
                    name: "eno1".into(),
                    mac: "ac:1f:6b:00:00:01".into(),
                    driver: Some("igb".into()),
                    speed_mbps: Some(1000),
                    carrier: true
                },
                Nic {
                    name: "eno2".into(),
                    mac: "ac:1f:6b:00:00:02".into(),
                    driver: None,
                    speed_mbps: None,
                    carrier: false
                },
            ]
        );
    }

    #[test]
    fn summary_is_lshw_shaped_with_board_firmware_memory_cpu_and_nics() {
        let t = fake_tree();
        let v = summary(&t.path().join("sys"), &t.path().join("proc"));
        assert_eq!(v["class"], "system");
        assert_eq!(v["vendor"], "Supermicro");
        assert_eq!(v["product"], "SYS-1029P");
        assert_eq!(v["serial"], "S12345");
        assert_eq!(v["configuration"]["boot"], "uefi");
        let core = &v["children"][0];
        assert_eq!(core["product"], "X11DPU");
        assert!(core.get("serial").is_none(), "an empty DMI field is left out");
        let kids = core["children"].as_array().unwrap();
        let by_class = |c: &str| kids.iter().filter(|k| k["class"] == c).collect::<Vec<_>>();
        assert_eq!(by_class("memory")[0]["description"], "UEFI");
        assert_eq!(by_class("memory")[1]["size"], 16303296u64 * 1024);
        assert_eq!(by_class("processor")[0]["product"], "Intel(R) Xeon(R) Gold 6130");
        assert_eq!(by_class("processor")[0]["configuration"]["threads"], "2");
        let net = by_class("network");
        assert_eq!(net.len(), 2, "the bridge is not a NIC");
        assert_eq!(net[0]["serial"], "ac:1f:6b:00:00:01");
        assert_eq!(net[0]["size"], 1_000_000_000u64);
        assert_eq!(net[0]["configuration"]["speed"], "1Gbit/s");
        assert_eq!(net[0]["configuration"]["driver"], "igb");
        assert_eq!(net[1]["configuration"]["link"], "no");
    }

    #[test]
    fn legacy_boot_without_dmi_still_yields_a_system_node() {
        let t = tempfile::tempdir().unwrap();
        let v = summary(&t.path().join("sys"), &t.path().join("proc"));
        assert_eq!(v["configuration"]["boot"], "bios");
        assert_eq!(v["children"][0]["children"][0]["description"], "BIOS");
    }
}
