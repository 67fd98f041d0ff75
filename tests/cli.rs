//! The multicall front door: dispatch by name, --list, --install, --version, unknown names.

mod common;
use common::*;

#[test]
fn unknown_applet_exits_127_with_the_list() {
    let out = run(&["no-such-applet"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown applet"), "{}", text(&out));
}

#[test]
fn version_prints_the_crate_version() {
    let out = run(&["--version"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("bty {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn install_makes_a_symlink_per_listed_applet_and_links_dispatch_by_name() {
    let dir = scratch();
    let listed = run(&["--list"]);
    assert!(listed.status.success(), "{}", text(&listed));
    let out = run(&["--install", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let names: Vec<String> =
        String::from_utf8_lossy(&listed.stdout).lines().map(|l| format!("bty-{l}")).collect();
    let mut made: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    made.sort();
    assert_eq!(made, names);
    // A link with an unknown name behaves like BusyBox: 127.
    let bogus = dir.path().join("bty-bogus");
    std::os::unix::fs::symlink(bty_path(), &bogus).unwrap();
    let out = std::process::Command::new(&bogus).output().unwrap();
    assert_eq!(out.status.code(), Some(127), "{}", text(&out));
}

#[test]
fn flash_usage_mistakes_are_exit_2_and_say_what_is_accepted() {
    for (args, says) in [
        (vec!["flash", "", "target", "--yes"], "empty IMAGE or TARGET"),
        (vec!["flash", "image", "", "--yes"], "empty IMAGE or TARGET"),
        (vec!["flash", "image", "target", "--format", "vmdk"], "raw, zst, gz, xz, bz2 or qcow2"),
        (vec!["flash", "/", "target", "--yes"], "/ is a directory"),
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
    }
}
