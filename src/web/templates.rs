//! The iPXE scripts, rendered from minijinja templates embedded in the binary.
//!
//! Which script and with what values is decided by `plan::decide`; this module only fills in
//! text. Every value that reaches a script is either validated (MAC, host, drive, names) or
//! reduced to one printable line here, so a label or serial cannot inject iPXE commands.
//!
//! The disk-boot scripts leave iPXE with `exit 1`, where the reference says `exit`: UEFI
//! firmware (EDK2/OVMF and the vendor firmware built on it) treats a boot option that returns
//! success as finished and stops at its boot menu, while a failure makes it try the next boot
//! option, which is the disk. Under legacy BIOS either status returns to the BIOS boot order.

use crate::error::{Error, Result};
use crate::plan::{ExitReason, Offer, Purpose};
use minijinja::{context, Environment};
use std::sync::OnceLock;

const TEMPLATES: &[(&str, &str)] = &[
    ("bootstrap.j2", include_str!("templates/ipxe/bootstrap.j2")),
    ("exit.j2", include_str!("templates/ipxe/exit.j2")),
    ("netboot.j2", include_str!("templates/ipxe/netboot.j2")),
    ("sanboot.j2", include_str!("templates/ipxe/sanboot.j2")),
    ("unknown.j2", include_str!("templates/ipxe/unknown.j2")),
];

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder().keep_trailing_newline(true).build() {
            env.set_syntax(syntax);
        }
        for (name, text) in TEMPLATES {
            // The templates are compiled into the binary and covered by tests; a syntax error
            // is a build defect, reported at render time below.
            let _ = env.add_template(name, text);
        }
        env
    })
}

fn render(name: &str, ctx: minijinja::Value) -> Result<String> {
    let tmpl = env().get_template(name).map_err(|e| Error::failed(format!("template {name}: {e}")))?;
    tmpl.render(ctx).map_err(|e| Error::failed(format!("rendering {name}: {e}")))
}

/// One printable line: control characters become spaces (comments must not end early).
fn oneline(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// What a per-machine script may mention.
pub struct ScriptVars<'a> {
    /// `host[:port]` the client used.
    pub host: &'a str,
    /// Canonical MAC.
    pub mac: &'a str,
    /// Boot mode wire name.
    pub boot_mode: &'a str,
    /// Bound ref.
    pub image_ref: Option<&'a str>,
    /// Target serial.
    pub serial: Option<&'a str>,
    /// Labels.
    pub labels: &'a [String],
    /// Kernel file name in the boot dir.
    pub kernel: &'a str,
    /// Initrd file name in the boot dir.
    pub initrd: &'a str,
}

/// `/pxe-bootstrap.ipxe`.
pub fn bootstrap(host: &str) -> Result<String> {
    render("bootstrap.j2", context! { version => crate::VERSION, host => host })
}

/// The per-machine script for an offer.
pub fn script(offer: &Offer, v: &ScriptVars<'_>) -> Result<String> {
    let labels = oneline(&v.labels.join(","));
    let image_ref = v.image_ref.unwrap_or("none");
    let serial = oneline(v.serial.unwrap_or("none"));
    match offer {
        Offer::Netboot { purpose, retry } => {
            let offer = match (purpose, retry) {
                (Purpose::Flash, false) => "bty-flash",
                (Purpose::Flash, true) => "bty-flash-retry",
                (Purpose::Tui, _) => "bty-tui",
                (Purpose::Inventory, false) => "bty-inventory",
                (Purpose::Inventory, true) => "bty-inventory-retry",
            };
            render(
                "netboot.j2",
                context! {
                    version => crate::VERSION, host => v.host, mac => v.mac, boot_mode => v.boot_mode,
                    offer => offer, labels => labels, image_ref => image_ref, serial => serial,
                    kernel => v.kernel, initrd => v.initrd,
                },
            )
        }
        Offer::Disk { drive } => render(
            "sanboot.j2",
            context! { version => crate::VERSION, mac => v.mac, boot_mode => v.boot_mode, labels => labels, drive => drive },
        ),
        Offer::Exit(reason) => {
            let reason = match reason {
                ExitReason::NoTargetDisk => "no_target_disk",
                ExitReason::OrphanRef => "orphan_ref",
            };
            let ref12: String =
                v.image_ref.map(|r| r.chars().take(12).collect()).unwrap_or_else(|| "none".into());
            render(
                "exit.j2",
                context! { version => crate::VERSION, mac => v.mac, boot_mode => v.boot_mode, reason => reason, ref12 => ref12 },
            )
        }
        Offer::Unknown => render(
            "unknown.j2",
            context! { version => crate::VERSION, mac => v.mac, boot_mode => v.boot_mode },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: &str = "52:54:00:11:22:33";

    fn vars<'a>(labels: &'a [String], serial: Option<&'a str>) -> ScriptVars<'a> {
        ScriptVars {
            host: "10.0.0.1:8080",
            mac: MAC,
            boot_mode: "bty-flash-once",
            image_ref: Some("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
            serial,
            labels,
            kernel: "bty-netboot-x86_64.vmlinuz",
            initrd: "bty-netboot-x86_64.initrd",
        }
    }

    fn lines(s: &str) -> Vec<&str> {
        s.lines().collect()
    }

    #[test]
    fn bootstrap_chains_by_the_hyphenated_mac_of_the_booting_nic() {
        let s = bootstrap("10.0.0.1:8080").unwrap();
        assert_eq!(lines(&s)[0], "#!ipxe");
        assert_eq!(lines(&s)[2], "chain http://10.0.0.1:8080/pxe/${mac:hexhyp}");
        assert!(s.ends_with('\n'));
    }

    #[test]
    fn netboot_script_is_exactly_the_spec_chain() {
        let labels = vec!["rack-1".to_string()];
        let s = script(&Offer::Netboot { purpose: Purpose::Flash, retry: false }, &vars(&labels, Some("S1")))
            .unwrap();
        let l = lines(&s);
        assert_eq!(l.len(), 6);
        assert_eq!(l[0], "#!ipxe");
        assert!(l[1].starts_with("# bty ") && l[1].contains("offer=bty-flash "), "{}", l[1]);
        assert_eq!(
            l[2],
            "# bty_image_ref=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef target_disk_serial=S1"
        );
        assert_eq!(
            l[3],
            "kernel http://10.0.0.1:8080/boot/bty-netboot-x86_64.vmlinuz?mac=52:54:00:11:22:33 \
             initrd=bty-netboot-x86_64.initrd console=tty0 console=ttyS1,115200 console=ttyS0,115200 \
             bty.server=http://10.0.0.1:8080 bty.mac=52:54:00:11:22:33 bty.ip=${ip}/${netmask} \
             bty.gw=${gateway} bty.dns=${dns}"
        );
        assert_eq!(l[4], "initrd http://10.0.0.1:8080/boot/bty-netboot-x86_64.initrd?mac=52:54:00:11:22:33");
        assert_eq!(l[5], "boot");
    }

    #[test]
    fn disk_boot_is_firmware_aware() {
        let s = script(&Offer::Disk { drive: "0x81".into() }, &vars(&[], None)).unwrap();
        let l = lines(&s);
        assert_eq!(
            l[2..],
            [
                "echo bty: 52:54:00:11:22:33 boot_mode=bty-flash-once, booting local disk (platform=${platform})",
                "sleep 1",
                "iseq ${platform} efi && exit 1 || sanboot --no-describe --drive 0x81 || exit 1",
            ]
        );
    }

    #[test]
    fn unknown_and_exit_scripts_match_the_reference_but_exit_failing() {
        let s = script(&Offer::Unknown, &vars(&[], None)).unwrap();
        assert_eq!(
            lines(&s)[2..],
            [
                "echo no usable bty assignment for 52:54:00:11:22:33; booting local disk (platform=${platform})",
                "sleep 5",
                "iseq ${platform} efi && exit 1 || sanboot --no-describe --drive 0x80 || exit 1",
            ]
        );
        let s = script(&Offer::Exit(ExitReason::OrphanRef), &vars(&[], None)).unwrap();
        assert_eq!(
            lines(&s)[2..],
            [
                "echo bty: 52:54:00:11:22:33 boot_mode=bty-flash-once ref=0123456789ab..., returning to local boot",
                "sleep 1",
                "exit 1",
            ]
        );
    }

    #[test]
    fn a_serial_with_newlines_cannot_inject_commands() {
        let s =
            script(&Offer::Netboot { purpose: Purpose::Flash, retry: false }, &vars(&[], Some("x\nshell")))
                .unwrap();
        assert!(!lines(&s).contains(&"shell"));
        assert_eq!(lines(&s).len(), 6);
    }
}
