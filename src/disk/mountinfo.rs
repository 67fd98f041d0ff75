//! `/proc/self/mountinfo` parsed into typed mounts (see `proc_pid_mountinfo(5)`).
//!
//! Only what disk discovery needs: the device number, the mount point and the mount source.
//! Lines that do not parse are skipped rather than failing discovery: the kernel's format is
//! stable, and a mount we cannot read is one we cannot attribute to a disk anyway.

/// One mounted filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `major:minor` of the device the filesystem lives on (`0:N` for virtual filesystems).
    pub dev: (u32, u32),
    /// Where it is mounted, with the kernel's octal escapes (`\040`) decoded.
    pub mount_point: String,
    /// The mount source, e.g. `/dev/sda1` or `tmpfs`.
    pub source: String,
}

/// Parses the whole text of a mountinfo file.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

/// `36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
fn parse_line(line: &str) -> Option<Mount> {
    let (left, right) = line.split_once(" - ")?;
    let mut fields = left.split(' ');
    let dev = parse_dev(fields.nth(2)?)?;
    let mount_point = unescape(fields.nth(1)?);
    let source = unescape(right.split(' ').nth(1)?);
    Some(Mount { dev, mount_point, source })
}

/// Parses `major:minor` as sysfs `dev` files and mountinfo write it.
pub fn parse_dev(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.trim().split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Decodes the `\ooo` octal escapes the kernel uses for space, tab, newline and backslash.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(d.iter().fold(0u8, |acc, c| acc.wrapping_mul(8).wrapping_add(c - b'0')));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_mount_point_and_source() {
        let text = "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                    22 1 0:21 / /proc rw,nosuid - proc proc rw\n";
        let mounts = parse(text);
        assert_eq!(
            mounts,
            vec![
                Mount { dev: (98, 0), mount_point: "/mnt/parent".into(), source: "/dev/root".into() },
                Mount { dev: (0, 21), mount_point: "/proc".into(), source: "proc".into() },
            ]
        );
    }

    #[test]
    fn decodes_octal_escapes_in_mount_points() {
        let mounts = parse("40 1 8:1 / /media/my\\040stick rw - vfat /dev/sdb1 rw\n");
        assert_eq!(mounts[0].mount_point, "/media/my stick");
    }

    #[test]
    fn skips_lines_that_do_not_parse() {
        assert!(parse("garbage\n\n1 2 x:y / / rw - ext4 /dev/a rw\n").is_empty());
    }
}
