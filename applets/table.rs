//! The applet table: one sorted row per applet. It drives dispatch, `--list`, `--install` and
//! the help text; adding an applet means one row here and one file beside this one.

/// An applet's entry point: the name it was invoked as (for help text) and its arguments
/// without the program name. Returns the exit code, or an error that `main` reports.
pub type AppletMain = fn(shown_as: &str, args: &[String]) -> bty::Result<i32>;

/// One row of the table.
pub struct Applet {
    /// The name after `bty-` and after `bty `.
    pub name: &'static str,
    /// One line for `bty --help`.
    pub summary: &'static str,
    /// The entry point.
    pub run: AppletMain,
}

/// Every applet, sorted by name. One line per row keeps parallel additions from colliding.
#[rustfmt::skip]
pub const APPLETS: &[Applet] = &[
    Applet { name: "catalog", summary: "list a catalog's images merged with the local image root", run: crate::catalog::main },
    Applet { name: "disks", summary: "list target disks (sysfs): size, model, serial, in use", run: crate::disks::main },
    Applet { name: "flash", summary: "write an image onto a disk or a file, with zero runs, delta, verify", run: crate::flash::main },
    Applet { name: "index", summary: "write an image's chunk index (and a seekable zstd copy) for network delta flashes", run: crate::index::main },
    Applet { name: "inspect", summary: "show an image's format, sizes and partition table", run: crate::inspect::main },
    Applet { name: "plan-agent", summary: "follow bty-web's plan for this machine: inventory, flash, report, reboot", run: crate::plan_agent::main },
    Applet { name: "tftp", summary: "read-only TFTP server for boot loaders", run: crate::tftp::main },
    Applet { name: "tui", summary: "the wizard: pick an image and a disk, confirm, flash, reboot", run: crate::tui::main },
    Applet { name: "web", summary: "PXE control plane, machine API, image store and audit log (bty-web)", run: crate::web::main },
];
