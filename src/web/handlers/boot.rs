//! Netboot artifacts under `/boot/`: download (with Range) that arms a machine's cycle when the
//! file exists, and streamed upload.

use crate::web::context::{event, AppContext};
use crate::web::files;
use crate::web::request::Request;
use crate::web::response::{Reply, Response};

/// `GET|HEAD /boot/{name}[?mac=]`: serves the file; a successful fetch with `?mac=` arms the
/// machine's cycle (proof the netboot environment is booting). A 404 arms nothing.
pub fn get(ctx: &AppContext, req: &Request<'_>, name: &str) -> Reply {
    let path = files::inside(&ctx.config.paths.boot_dir, name)?;
    let resp = files::serve(req, &path, None, vec![files::attachment(name)])?;
    if let Some(mac) = req.query("mac").and_then(crate::wire::normalize_mac) {
        // Serving the file never depends on the write (a full disk still boots machines).
        let armed = ctx.db.arm_cycle(&mac, &req.client_ip, &crate::db::now()).unwrap_or_else(|err| {
            ctx.unrecorded("arming a boot cycle", &err);
            None
        });
        if armed == Some(true) {
            let mut e = event(
                "netboot.flasher.armed",
                ("machine", &mac),
                "pxe-client",
                format!("{mac} fetched {name}"),
            );
            e.details = Some(serde_json::json!({ "artifact": name }));
            ctx.audit(Some(req), e);
            if let Some(rec) = ctx.db.machine(&mac)? {
                super::notify_machine(ctx, &rec);
            }
        }
    }
    Ok(resp)
}

/// `PUT /boot/{name}`: streams the body into the boot dir (visible only when complete).
pub fn put(ctx: &AppContext, req: &Request<'_>, name: &str) -> Reply {
    let name = files::valid_basename(name)?;
    let dir = &ctx.config.paths.boot_dir;
    let received = files::receive(req, dir, name, ctx.config.tuning.max_upload_bytes, &ctx.shutdown);
    let partial = match received {
        Ok(p) => p,
        Err(err) => {
            let mut e = event(
                "netboot.artifact.upload.failed",
                ("netboot", name),
                "operator",
                format!("upload of {name} failed"),
            );
            e.details = Some(serde_json::json!({ "status": err.status, "detail": err.detail }));
            ctx.audit(Some(req), e);
            return Err(err);
        }
    };
    let (size, sha256) = (partial.size, partial.sha256.clone());
    let dest = dir.join(name);
    partial.commit(&dest)?;
    let mut e = event(
        "netboot.artifact.uploaded",
        ("netboot", name),
        "operator",
        format!("{name} uploaded ({size} bytes)"),
    );
    e.details = Some(serde_json::json!({ "size_bytes": size, "sha256": sha256 }));
    ctx.audit(Some(req), e);
    Ok(Response::json(
        200,
        &serde_json::json!({ "name": name, "size_bytes": size, "path": dest.display().to_string(), "sha256": sha256 }),
    ))
}
