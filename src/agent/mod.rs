//! The plan agent: what runs in the netboot initramfs (as PID 1) or as `bty --mac`.
//!
//! `pid1` does the duties of an init (pseudo filesystems, modules, network, never exiting);
//! `stick` is PID 1 of the USB live stick (`bty.mode=usb`: local images, the wizard on every
//! console, `bty.auto=`); `flow` is the server-driven cycle (inventory → plan → flash/inventory/interactive/exit →
//! status → reboot), talking to bty-web through `client`. The pieces parse first and act
//! second, so each is testable without a machine: `cmdline` parses `/proc/cmdline`,
//! `modules` matches modaliases, `inventory` reads a sysfs/DMI tree whose root is a parameter.

pub mod client;
pub mod clock;
pub mod cmdline;
pub mod console;
pub mod flow;
pub mod hardware;
pub mod modules;
pub mod net;
pub mod pid1;
pub mod stick;
