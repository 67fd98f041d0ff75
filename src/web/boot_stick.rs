//! The boot stick bty-web hands out on its Netboot page (`bty-boot-stick.img`), for machines
//! whose firmware cannot PXE or whose LAN offers no PXE options: a small disk image, built in
//! memory per download, holding iPXE as the removable-media UEFI loader
//! (`EFI/BOOT/BOOTX64.EFI`) and `autoexec.ipxe`, a script that runs `dhcp` and chains this
//! server's `/pxe-bootstrap.ipxe`. Written to a stick it replaces the PXE step; from there
//! on the machine is served exactly as a PXE client.
//!
//! The loader is [`LOADER`] in the boot dir: an iPXE that runs `autoexec.ipxe` from the
//! volume it was loaded from (Debian's bookworm iPXE of 2019 does not; `bty-media/netboot.sh`
//! stages trixie's). UEFI only: a legacy-BIOS boot prints a sentence saying so.
//!
//! Layout: an MBR with one EFI System partition (type 0xEF) from 1 MiB to the end, FAT as
//! the `fatfs` crate formats it (no mounts, no mtools).

use crate::error::{Error, Result};
use std::io::{Cursor, Write};

/// The iPXE binary put on the stick, in the boot dir.
pub const LOADER: &str = "ipxe-stick.efi";

/// What the loader is, for the Netboot page's artifact list.
pub const LOADER_ROLE: &str =
    "iPXE for the boot stick (UEFI; runs autoexec.ipxe from the stick: Debian trixie's, not bookworm's)";

/// The download's file name.
pub const FILE_NAME: &str = "bty-boot-stick.img";

/// Whole image: room for a 1–2 MiB iPXE with FAT overhead, small enough to build per request.
const IMAGE_BYTES: usize = 8 << 20;
/// The partition starts at 1 MiB (sector 2048), as partitioning tools align it.
const PART_START_SECTOR: u32 = 2048;
/// Largest loader accepted (iPXE builds are 1–2 MiB; anything far larger is not one).
pub const LOADER_MAX: u64 = 6 << 20;

/// Boot code for a legacy BIOS that boots the stick anyway: prints [`BIOS_MESSAGE`] through
/// INT 10h and halts, so the operator learns why nothing happens. Assembled by hand (16-bit):
/// `cli; xor ax,ax; mov ds,ax; mov si,0x7c1a; cld; l: lodsb; test al,al; jz h; mov ah,0x0e;
/// mov bx,7; int 0x10; jmp l; h: hlt; jmp h`, the message following at offset 26.
const BIOS_CODE: [u8; 26] = [
    0xFA, 0x31, 0xC0, 0x8E, 0xD8, 0xBE, 0x1A, 0x7C, 0xFC, 0xAC, 0x84, 0xC0, 0x74, 0x09, 0xB4, 0x0E, 0xBB,
    0x07, 0x00, 0xCD, 0x10, 0xEB, 0xF2, 0xF4, 0xEB, 0xFD,
];
const BIOS_MESSAGE: &[u8] = b"bty boot stick: UEFI only. Boot this stick in UEFI mode.\r\n\0";

/// Checks that `s` is a plain `host[:port]` (a DNS name, an IPv4 address or a bracketed IPv6
/// address, and a port 1–65535): it is written into a script iPXE executes, and the `Host`
/// header it may come from is the client's to choose.
pub fn authority(s: &str) -> Result<&str> {
    let bad = |why: &str| {
        Error::invalid(format!(
            "{s:?} is not a plain host[:port] for the boot stick ({why}); open the Netboot page by this server's address or name"
        ))
    };
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        v6.parse::<std::net::Ipv6Addr>().map_err(|_| bad("not an IPv6 address in brackets"))?;
        match after {
            "" => (None, None),
            p => (None, Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?)),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(s), None),
        }
    };
    if let Some(p) = port {
        let ok = !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
        if !ok || !(1..=65535).contains(&p.parse::<u32>().unwrap_or(0)) {
            return Err(bad("the port must be a number 1-65535"));
        }
    }
    if let Some(h) = host {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if h.is_empty() || h.len() > 253 || !h.split('.').all(label_ok) {
            return Err(bad("the host must be a DNS name or an IPv4 address"));
        }
    }
    Ok(s)
}

/// The script on the stick: DHCP on any NIC, then this server's bootstrap; on failure it
/// says what it tried and retries (a cable plugged in late, a server still starting).
pub fn script(authority: &str) -> String {
    let url = format!("http://{authority}/pxe-bootstrap.ipxe");
    format!(
        "#!ipxe\n\
         # bty boot stick (bty {version}): DHCP, then the bootstrap of the bty-web at {authority}\n\
         :retry\n\
         echo bty boot stick: dhcp, then chain {url}\n\
         dhcp && chain {url} || goto failed\n\
         :failed\n\
         echo bty boot stick: could not reach {url}, retrying in 10 s (Ctrl-C: iPXE shell)\n\
         sleep 10 || shell\n\
         goto retry\n",
        version = crate::VERSION,
    )
}

/// Builds the stick image: `loader` as `EFI/BOOT/BOOTX64.EFI` and [`script`] for `authority`
/// (already checked by [`authority`]) as `/autoexec.ipxe`.
pub fn build(loader: &[u8], authority: &str) -> Result<Vec<u8>> {
    if loader.len() as u64 > LOADER_MAX {
        return Err(Error::invalid(format!(
            "{LOADER} is {} bytes, more than an iPXE build ({LOADER_MAX} at most): replace it with Debian trixie's ipxe.efi",
            loader.len()
        )));
    }
    let part_offset = PART_START_SECTOR as usize * 512;
    let mut part = Cursor::new(vec![0u8; IMAGE_BYTES - part_offset]);
    let fat_err = |what: &str, e: std::io::Error| Error::failed(format!("boot stick: {what}: {e}"));
    fatfs::format_volume(&mut part, fatfs::FormatVolumeOptions::new().volume_label(*b"BTY-BOOT   "))
        .map_err(|e| fat_err("formatting the FAT", e))?;
    {
        let fs = fatfs::FileSystem::new(&mut part, fatfs::FsOptions::new())
            .map_err(|e| fat_err("opening the new FAT", e))?;
        {
            let root = fs.root_dir();
            let boot = root
                .create_dir("EFI")
                .and_then(|d| d.create_dir("BOOT"))
                .map_err(|e| fat_err("creating EFI/BOOT", e))?;
            let mut f = boot.create_file("BOOTX64.EFI").map_err(|e| fat_err("creating BOOTX64.EFI", e))?;
            f.write_all(loader).map_err(|e| fat_err("writing BOOTX64.EFI", e))?;
            let mut f =
                root.create_file("autoexec.ipxe").map_err(|e| fat_err("creating autoexec.ipxe", e))?;
            f.write_all(script(authority).as_bytes()).map_err(|e| fat_err("writing autoexec.ipxe", e))?;
        }
        fs.unmount().map_err(|e| fat_err("closing the FAT", e))?;
    }
    let mut img = vec![0u8; part_offset];
    img[..BIOS_CODE.len()].copy_from_slice(&BIOS_CODE);
    img[BIOS_CODE.len()..BIOS_CODE.len() + BIOS_MESSAGE.len()].copy_from_slice(BIOS_MESSAGE);
    // One partition entry: bootable, CHS fields saturated (LBA is what anything reads), type
    // 0xEF (EFI System), start and length in sectors.
    let sectors = ((IMAGE_BYTES - part_offset) / 512) as u32;
    let entry = &mut img[446..462];
    entry[..8].copy_from_slice(&[0x80, 0xFE, 0xFF, 0xFF, 0xEF, 0xFE, 0xFF, 0xFF]);
    entry[8..12].copy_from_slice(&PART_START_SECTOR.to_le_bytes());
    entry[12..16].copy_from_slice(&sectors.to_le_bytes());
    img[510] = 0x55;
    img[511] = 0xAA;
    let mut part = part.into_inner();
    // fatfs writes 0 hidden sectors; a partition's BPB names its start (some firmware checks).
    part[28..32].copy_from_slice(&PART_START_SECTOR.to_le_bytes());
    img.extend_from_slice(&part);
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn fat_of(img: &[u8]) -> fatfs::FileSystem<Cursor<Vec<u8>>> {
        let part = img[PART_START_SECTOR as usize * 512..].to_vec();
        fatfs::FileSystem::new(Cursor::new(part), fatfs::FsOptions::new()).unwrap()
    }

    fn read(fs: &fatfs::FileSystem<Cursor<Vec<u8>>>, path: &str) -> Vec<u8> {
        let mut out = Vec::new();
        fs.root_dir().open_file(path).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn the_image_is_an_mbr_with_one_esp_holding_the_loader_and_the_script() {
        let loader: Vec<u8> = (0..1_200_000u32).map(|i| (i % 251) as u8).collect();
        let img = build(&loader, "192.0.2.5:8080").unwrap();
        assert_eq!(img.len(), IMAGE_BYTES);
        assert_eq!(&img[510..512], &[0x55, 0xAA]);
        assert_eq!(img[446 + 4], 0xEF, "partition type EFI System");
        assert_eq!(u32::from_le_bytes(img[454..458].try_into().unwrap()), 2048);
        assert_eq!(
            u32::from_le_bytes(img[458..462].try_into().unwrap()) as usize * 512,
            IMAGE_BYTES - (1 << 20)
        );
        let fs = fat_of(&img);
        assert_eq!(fs.volume_label(), "BTY-BOOT");
        assert_eq!(read(&fs, "EFI/BOOT/BOOTX64.EFI"), loader);
        let script = String::from_utf8(read(&fs, "autoexec.ipxe")).unwrap();
        assert!(script.starts_with("#!ipxe\n"), "{script}");
        assert!(script.contains("dhcp && chain http://192.0.2.5:8080/pxe-bootstrap.ipxe ||"), "{script}");
    }

    #[test]
    fn an_oversized_loader_is_refused_by_name() {
        let e = build(&vec![0u8; LOADER_MAX as usize + 1], "h").unwrap_err().to_string();
        assert!(e.contains(LOADER), "{e}");
    }

    #[test]
    fn only_plain_host_and_port_pass() {
        for good in
            ["192.0.2.5", "192.0.2.5:8080", "bty.example", "bty-web:80", "[fd00::1]", "[fd00::1]:8080"]
        {
            assert_eq!(authority(good).unwrap(), good);
        }
        for bad in [
            "",
            "a b",
            "h:0",
            "h:65536",
            "h:80:80",
            "h:",
            "-h",
            "h..x",
            "[fd00::1",
            "[zz]",
            "[fd00::1]x",
            "h/x",
            "h\nchain http://evil/",
            "${x}",
            "h;shell",
            "user@h",
        ] {
            let e = authority(bad).unwrap_err().to_string();
            assert!(e.contains("host[:port]"), "{bad:?}: {e}");
        }
    }
}
