//! What a file name says about an image: its catalog format id and its architecture
//! (reference §2.1). Names only; the flash path detects formats by magic bytes first.

/// Suffix → format id, most specific first (the wire values catalogs and plans use).
const FORMATS: &[(&str, &str)] = &[
    (".img.zst", "img.zst"),
    (".img.xz", "img.xz"),
    (".img.gz", "img.gz"),
    (".img.bz2", "img.bz2"),
    (".qcow2", "qcow2"),
    (".img", "img"),
];

/// Substring → architecture, first match wins, in the reference's order.
const ARCHES: &[(&str, &str)] = &[
    ("x86_64", "x86_64"),
    ("x86-64", "x86_64"),
    ("aarch64", "arm64"),
    ("amd64", "x86_64"),
    ("arm64", "arm64"),
    ("armhf", "arm"),
    ("armv7l", "arm"),
    ("armv6l", "armv6"),
    ("riscv64", "riscv64"),
    ("ppc64le", "ppc64le"),
    ("s390x", "s390x"),
    ("i686", "i386"),
    ("i386", "i386"),
];

/// The format id a file name implies (`img.zst`, `qcow2`, …), case-insensitively.
pub fn format_id(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    FORMATS.iter().find(|(suffix, _)| lower.ends_with(suffix)).map(|(_, id)| *id)
}

/// The architecture a file name hints at (display only; it never gates a flash).
pub fn arch_hint(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    ARCHES.iter().find(|(needle, _)| lower.contains(needle)).map(|(_, arch)| *arch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_suffix_wins() {
        assert_eq!(format_id("Debian.IMG.ZST"), Some("img.zst"));
        assert_eq!(format_id("a.img"), Some("img"));
        assert_eq!(format_id("a.qcow2"), Some("qcow2"));
        assert_eq!(format_id("a.tar.gz"), None);
        assert_eq!(format_id("a.iso"), None);
    }

    #[test]
    fn arch_hints_follow_the_reference_order() {
        assert_eq!(arch_hint("debian-12-amd64.img"), Some("x86_64"));
        assert_eq!(arch_hint("x-aarch64.img"), Some("arm64"));
        assert_eq!(arch_hint("plain.img"), None);
    }
}
