//! Kernel modules for the hardware that is present: match each device's `modalias` against
//! `modules.alias`, close over `modules.dep`, and load in dependency order.
//!
//! The initramfs ships a trimmed `modules.alias`/`modules.dep` (only the NIC, disk and bus
//! drivers it carries), so whatever matches can be loaded. Loading is repeated in rounds
//! because loading a bus driver makes new devices appear (virtio_pci → virtio devices,
//! ahci → SCSI disks, xhci → USB devices → usb-storage → SCSI disks). This module does not
//! handle firmware files, module parameters, blacklists or `install` commands: none are needed
//! for the drivers the initramfs carries.

use crate::error::{Context, Result};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// A module name as the kernel knows it: `-` and `_` are the same character.
pub fn normalise(name: &str) -> String {
    name.replace('-', "_")
}

/// The module name of a `.ko` path (`kernel/drivers/net/virtio_net.ko.zst` → `virtio_net`).
fn name_of(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = base.split(".ko").next().unwrap_or(base);
    normalise(stem)
}

/// The parsed `modules.alias` and `modules.dep` of one module directory.
#[derive(Debug, Default)]
pub struct ModuleIndex {
    /// (pattern, module name) in file order.
    aliases: Vec<(String, String)>,
    /// module name → (relative path of its .ko, names of its direct dependencies).
    deps: HashMap<String, (String, Vec<String>)>,
}

impl ModuleIndex {
    /// Parses the two files' text. Malformed lines are skipped: a bad line must not keep the
    /// NIC driver from loading.
    pub fn parse(alias_text: &str, dep_text: &str) -> ModuleIndex {
        let aliases = alias_text
            .lines()
            .filter_map(|l| {
                let mut w = l.split_ascii_whitespace();
                match (w.next(), w.next(), w.next()) {
                    (Some("alias"), Some(pattern), Some(module)) => {
                        Some((pattern.to_string(), normalise(module)))
                    }
                    _ => None,
                }
            })
            .collect();
        let deps = dep_text
            .lines()
            .filter_map(|l| {
                let (path, rest) = l.split_once(':')?;
                let path = path.trim();
                let deps = rest.split_ascii_whitespace().map(name_of).collect();
                Some((name_of(path), (path.to_string(), deps)))
            })
            .collect();
        ModuleIndex { aliases, deps }
    }

    /// Reads `modules.alias` and `modules.dep` from `dir` (`/lib/modules/$(uname -r)`).
    pub fn load(dir: &Path) -> Result<ModuleIndex> {
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
        };
        Ok(ModuleIndex::parse(&read("modules.alias")?, &read("modules.dep")?))
    }

    /// The modules whose alias patterns match `modalias`, without duplicates, in file order.
    pub fn matching(&self, modalias: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (pattern, module) in &self.aliases {
            if glob_match(pattern.as_bytes(), modalias.as_bytes()) && !out.contains(module) {
                out.push(module.clone());
            }
        }
        out
    }

    /// `wanted` and everything they depend on, each once, dependencies first. Modules missing
    /// from `modules.dep` are left out (they are not in this initramfs).
    pub fn load_order(&self, wanted: &[String]) -> Vec<(String, String)> {
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        for w in wanted {
            self.visit(&normalise(w), &mut seen, &mut order);
        }
        order
    }

    fn visit(&self, name: &str, seen: &mut BTreeSet<String>, order: &mut Vec<(String, String)>) {
        if !seen.insert(name.to_string()) {
            return;
        }
        let Some((path, deps)) = self.deps.get(name) else { return };
        for d in deps {
            self.visit(d, seen, order);
        }
        order.push((name.to_string(), path.clone()));
    }
}

/// `fnmatch(3)` without flags, as modprobe uses for aliases: `*`, `?` and `[...]` classes
/// (with ranges and `!`/`^` negation).
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class_match(&pattern[p..], text[t]) {
                        if matched {
                            p += next;
                            t += 1;
                            continue;
                        }
                    } else if text[t] == b'[' {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
                c if c == text[t] => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches one character against the class at the start of `pattern` (which begins with `[`).
/// Returns (matched, length of the class) or `None` when the class is not closed.
fn class_match(pattern: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pattern.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pattern.len() {
        let lo = pattern[i];
        if lo == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if pattern.get(i + 1) == Some(&b'-') && pattern.get(i + 2).is_some_and(|&h| h != b']') {
            let hi = pattern[i + 2];
            matched |= lo <= c && c <= hi;
            i += 3;
        } else {
            matched |= lo == c;
            i += 1;
        }
    }
    None
}

/// Every `modalias` of a device currently on a bus under `sysfs` (`bus/*/devices/*/modalias`).
pub fn present_modaliases(sysfs: &Path) -> Vec<String> {
    let mut out = BTreeSet::new();
    let Ok(buses) = std::fs::read_dir(sysfs.join("bus")) else { return Vec::new() };
    for bus in buses.flatten() {
        let Ok(devices) = std::fs::read_dir(bus.path().join("devices")) else { continue };
        for dev in devices.flatten() {
            if let Ok(alias) = std::fs::read_to_string(dev.path().join("modalias")) {
                let alias = alias.trim();
                if !alias.is_empty() {
                    out.insert(alias.to_string());
                }
            }
        }
    }
    out.into_iter().collect()
}

/// What one round of loading did.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Modules inserted, in order.
    pub loaded: Vec<String>,
    /// Modules that failed, with the reason.
    pub failed: Vec<(String, String)>,
}

/// Loads the modules for every present device, in rounds until nothing new appears
/// (at most `rounds`). `dir` is the module directory, `sysfs` usually `/sys`.
pub fn load_for_present_devices(dir: &Path, sysfs: &Path, rounds: usize) -> Result<LoadReport> {
    let index = ModuleIndex::load(dir)?;
    let mut report = LoadReport::default();
    let mut tried: BTreeSet<String> = BTreeSet::new();
    for round in 0..rounds {
        let mut wanted: Vec<String> = Vec::new();
        for alias in present_modaliases(sysfs) {
            for m in index.matching(&alias) {
                if !tried.contains(&m) && !wanted.contains(&m) {
                    wanted.push(m);
                }
            }
        }
        if wanted.is_empty() {
            break;
        }
        insert(&index, dir, sysfs, &wanted, &mut tried, &mut report);
        for w in wanted {
            tried.insert(w);
        }
        // USB and SCSI scanning finish asynchronously; give new devices a moment to appear
        // before looking for their modaliases (a round that found nothing new ends the loop).
        if round + 1 < rounds {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }
    Ok(report)
}

/// Loads the modules that declare `alias` (e.g. `fs-exfat`: filesystems have no device whose
/// modalias would name them), with their dependencies.
pub fn load_by_alias(dir: &Path, sysfs: &Path, alias: &str) -> Result<LoadReport> {
    let index = ModuleIndex::load(dir)?;
    let mut report = LoadReport::default();
    insert(&index, dir, sysfs, &index.matching(alias), &mut BTreeSet::new(), &mut report);
    Ok(report)
}

/// Inserts `wanted` in dependency order, skipping what was tried or is loaded already.
fn insert(
    index: &ModuleIndex,
    dir: &Path,
    sysfs: &Path,
    wanted: &[String],
    tried: &mut BTreeSet<String>,
    report: &mut LoadReport,
) {
    for (name, rel) in index.load_order(wanted) {
        if !tried.insert(name.clone()) || sysfs.join("module").join(&name).exists() {
            continue;
        }
        let path: PathBuf = dir.join(&rel);
        match crate::sys::module::finit_module(&path) {
            Ok(crate::sys::module::Loaded::Now) => report.loaded.push(name),
            Ok(crate::sys::module::Loaded::Already) => {}
            Err(e) => report.failed.push((name, e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias pci:v00001AF4d00001000sv*sd*bc*sc*i* virtio_pci
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000001v* virtio_net
alias virtio:d00000002v* virtio_blk
alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000
alias pci:v*d*sv*sd*bc01sc06i01* ahci
alias scsi:t-0x00* sd_mod
alias usb:v*p*d*dc*dsc*dp*ic08isc06ip50in* usb_storage
alias usb:v0BC2p3312d0[0-1]*dc*dsc*dp*ic*isc*ip*in* uas
alias usb:v152Dp0578d[!2]*dc*dsc*dp*ic*isc*ip*in* uas
";
    const DEP: &str = "\
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/usb/storage/usb-storage.ko: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/usb/core/usbcore.ko
bogus line without colon
";

    fn index() -> ModuleIndex {
        ModuleIndex::parse(ALIAS, DEP)
    }

    fn names(order: &[(String, String)]) -> Vec<&str> {
        order.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn virtio_pci_device_matches_once_despite_two_patterns() {
        assert_eq!(
            index().matching("pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"),
            vec!["virtio_pci"]
        );
    }

    #[test]
    fn modalias_matching_follows_the_sample_alias_file() {
        let idx = index();
        let cases: &[(&str, &[&str])] = &[
            ("virtio:d00000001v00001AF4", &["virtio_net"]),
            ("virtio:d00000002v00001AF4", &["virtio_blk"]),
            ("pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00", &["e1000"]),
            ("pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01", &["ahci"]),
            ("scsi:t-0x00", &["sd_mod"]),
            ("scsi:t-0x05", &[]),
            ("usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00", &["usb_storage"]),
            ("usb:v0BC2p3312d0100dc00dsc00dp00ic08isc06ip62in00", &["uas"]),
            ("usb:v0BC2p3312d0200dc00dsc00dp00ic08isc06ip62in00", &[]),
            ("usb:v152Dp0578d0100dc00dsc00dp00ic08isc06ip62in00", &["uas"]),
            ("usb:v152Dp0578d2000dc00dsc00dp00ic08isc06ip62in00", &[]),
            ("pci:v000010ECd00008168sv00001AF4sd00001100bc02sc00i00", &[]),
        ];
        for (alias, want) in cases {
            assert_eq!(idx.matching(alias), want.to_vec(), "{alias}");
        }
    }

    #[test]
    fn glob_handles_stars_questions_and_classes() {
        let cases = [
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*", "", true),
            ("[a-c]x", "bx", true),
            ("[!a-c]x", "bx", false),
            ("[]]", "]", true),
            ("x[", "x[", true),
            ("*bc01sc06i01*", "pci:v1d2bc01sc06i01", true),
        ];
        for (p, t, want) in cases {
            assert_eq!(glob_match(p.as_bytes(), t.as_bytes()), want, "{p} vs {t}");
        }
    }

    #[test]
    fn load_order_puts_dependencies_first_and_each_module_once() {
        let idx = index();
        let order = idx.load_order(&["virtio_pci".into(), "virtio_net".into(), "virtio_blk".into()]);
        assert_eq!(
            names(&order),
            vec![
                "virtio_pci_legacy_dev",
                "virtio_pci_modern_dev",
                "virtio_ring",
                "virtio",
                "virtio_pci",
                "failover",
                "net_failover",
                "virtio_net",
                "virtio_blk"
            ]
        );
        assert_eq!(order[4].1, "kernel/drivers/virtio/virtio_pci.ko");
    }

    #[test]
    fn names_normalise_dashes_and_compression_suffixes() {
        let idx = index();
        let order = idx.load_order(&["usb-storage".into()]);
        // scsi_mod and usbcore are not in this index (built in or not shipped): left out.
        assert_eq!(names(&order), vec!["usb_storage"]);
        assert_eq!(name_of("kernel/x/foo-bar.ko.zst"), "foo_bar");
    }

    #[test]
    fn present_modaliases_reads_every_bus_of_a_fake_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        let dev = |bus: &str, name: &str, alias: &str| {
            let d = dir.path().join("bus").join(bus).join("devices").join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("modalias"), format!("{alias}\n")).unwrap();
        };
        dev("pci", "0000:00:03.0", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00");
        dev("virtio", "virtio0", "virtio:d00000001v00001AF4");
        dev("virtio", "virtio1", "virtio:d00000001v00001AF4");
        std::fs::create_dir_all(dir.path().join("bus/cpu/devices/cpu0")).unwrap();
        let got = present_modaliases(dir.path());
        assert_eq!(
            got,
            vec!["pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", "virtio:d00000001v00001AF4"]
        );
    }
}
