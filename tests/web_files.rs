//! bty-web's file routes (`/boot/`, `/images/`, `/backups/`) against hostile names and a
//! hostile state directory, black-box over real HTTP: a symlink out of the served directory is
//! refused (400, as the reference), names up to 255 bytes work end to end, error messages name
//! neither an absolute path nor a temporary upload, and `Content-Disposition` follows RFC 6266.

mod common;
use common::webserver::WebServer;
use common::*;
use std::os::unix::fs::symlink;

#[test]
fn file_routes_refuse_a_symlink_out_of_their_directory() {
    let dir = scratch();
    let state = dir.path().join("state");
    let s = WebServer::start_logged_in(&state);
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "not for the LAN").unwrap();
    assert_eq!(s.send("PUT", "/boot/ipxe.efi", &[], b"efi".to_vec()).status, 200);

    // /boot: out of the directory is 400 for GET and HEAD; a link inside it is served.
    symlink(&secret, state.join("boot/leak.efi")).unwrap();
    symlink("ipxe.efi", state.join("boot/alias.efi")).unwrap();
    for method in ["GET", "HEAD"] {
        let r = s.raw(method, "/boot/leak.efi", &[], vec![]);
        assert_eq!(r.status, 400, "{method}: {}", r.text());
        assert!(!r.text().contains("not for the LAN"));
    }
    assert_eq!(s.raw("GET", "/boot/alias.efi", &[], vec![]).text(), "efi");

    // /images/{ref}/{name}: the stored file replaced by a link out.
    let r = s.send("PUT", "/images/disk.img", &[], vec![7u8; 4096]);
    assert_eq!(r.status, 201, "{}", r.text());
    let image_ref = r.json()["ref"].as_str().unwrap().to_string();
    std::fs::remove_file(state.join("images/disk.img")).unwrap();
    symlink(&secret, state.join("images/disk.img")).unwrap();
    let r = s.raw("GET", &format!("/images/{image_ref}/disk.img"), &[], vec![]);
    assert_eq!(r.status, 400, "{}", r.text());

    // /backups/{name} (API and UI download).
    let name = "state-20200101T000000Z.db";
    symlink(&secret, state.join("backups").join(name)).unwrap_or_else(|_| {
        std::fs::create_dir_all(state.join("backups")).unwrap();
        symlink(&secret, state.join("backups").join(name)).unwrap()
    });
    for path in [format!("/backups/{name}"), format!("/ui/backups/{name}/download")] {
        let r = s.get(&path);
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(!r.text().contains("not for the LAN"), "{path}");
    }
}

#[test]
fn names_of_255_bytes_work_and_errors_show_no_path_or_temporary_name() {
    let dir = scratch();
    let state = dir.path().join("state");
    let s = WebServer::start_logged_in(&state);
    let long = format!("{}.efi", "b".repeat(251));
    assert_eq!(long.len(), 255);
    let r = s.send("PUT", &format!("/boot/{long}"), &[], b"long".to_vec());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.raw("GET", &format!("/boot/{long}"), &[], vec![]).text(), "long");
    let long_image = format!("{}.img", "c".repeat(251));
    let r = s.send("PUT", &format!("/images/{long_image}"), &[], vec![1u8; 4096]);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(s.send("PUT", &format!("/boot/{}", "d".repeat(256)), &[], b"x".to_vec()).status, 400);

    // Errors: a broken upload, and a boot directory that cannot take files.
    let mut errors = Vec::new();
    let r = s.send("PUT", "/images/fake.img.gz", &[], b"not gzip at all".to_vec());
    assert_eq!(r.status, 422);
    errors.push(r.text());
    std::fs::remove_dir_all(state.join("boot")).unwrap();
    std::fs::write(state.join("boot"), "a file where the directory was").unwrap();
    let r = s.send("PUT", &format!("/boot/{long}"), &[], b"x".to_vec());
    assert!(r.status >= 400, "{}", r.text());
    errors.push(r.text());
    let state_text = state.display().to_string();
    for e in errors {
        assert!(!e.contains(".partial-") && !e.contains(&state_text), "{e}");
    }
}

#[test]
fn content_disposition_is_quoted_per_rfc_6266() {
    let dir = scratch();
    let s = WebServer::start_logged_in(&dir.path().join("state"));
    let name = "odd \"name\";ü.efi";
    assert_eq!(s.send("PUT", &format!("/boot/{}", enc(name)), &[], b"x".to_vec()).status, 200);
    let r = s.raw("GET", &format!("/boot/{}", enc(name)), &[], vec![]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-disposition"),
        Some(r#"attachment; filename="odd \"name\";_.efi"; filename*=UTF-8''odd%20%22name%22%3B%C3%BC.efi"#)
    );
}
