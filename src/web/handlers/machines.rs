//! The machine API (compatible with reference §4.2/§4.3): list, get, full-replace PUT, DELETE,
//! and the stored inventory blobs.

use super::{notify_machine, parse_mac, SMALL_JSON};
use crate::db::MachineRecord;
use crate::web::context::{event, AppContext};
use crate::web::request::Request;
use crate::web::response::{Body, HttpError, Reply, Response};
use crate::wire::{Assignment, Machine, MachineUpsert};

fn not_found() -> HttpError {
    HttpError::not_found("machine not found")
}

/// `GET /machines`: every machine, ordered by MAC.
pub fn list(ctx: &AppContext, _req: &Request<'_>) -> Reply {
    let machines: Vec<Machine> = ctx.db.machines()?.into_iter().map(|r| r.machine).collect();
    Ok(Response::json(200, &machines))
}

/// `GET /machines/{mac}`.
pub fn get(ctx: &AppContext, _req: &Request<'_>, mac: &str) -> Reply {
    let mac = parse_mac(mac)?;
    let rec = ctx.db.machine(&mac)?.ok_or_else(not_found)?;
    Ok(Response::json(200, &rec.machine))
}

/// `PUT /machines/{mac}`: creates or fully replaces the assignment.
pub fn put(ctx: &AppContext, req: &Request<'_>, mac: &str) -> Reply {
    let mac = parse_mac(mac)?;
    let checked =
        req.json::<MachineUpsert>(SMALL_JSON).and_then(|u| u.validate().map_err(HttpError::unprocessable));
    let a = match checked {
        Ok(a) => a,
        Err(err) => {
            let mut e = event(
                "machine.upsert.failed",
                ("machine", &mac),
                "operator",
                format!("{mac}: assignment refused"),
            );
            e.details = Some(serde_json::json!({ "status": err.status, "detail": err.detail }));
            ctx.audit(Some(req), e);
            return Err(err);
        }
    };
    let rec = save_assignment(ctx, req, &mac, &a)?;
    Ok(Response::json(200, &rec.machine))
}

/// Stores a validated assignment, records the audit event and tells SSE subscribers; shared by
/// the API's PUT and the UI's assignment form.
pub fn save_assignment(
    ctx: &AppContext,
    req: &Request<'_>,
    mac: &str,
    a: &Assignment,
) -> Result<MachineRecord, HttpError> {
    let (rec, created) = ctx.db.upsert_machine(mac, a, &crate::db::now())?;
    let kind = if created { "machine.created" } else { "machine.upserted" };
    let mut e =
        event(kind, ("machine", mac), "operator", format!("{mac}: boot_mode={}", a.boot_mode.as_str()));
    e.details = Some(serde_json::json!({
        "bty_image_ref": a.bty_image_ref, "boot_mode": a.boot_mode.as_str(), "sanboot_drive": a.sanboot_drive,
        "labels": a.labels, "target_disk_serial": a.target_disk_serial, "delta": rec.machine.delta,
    }));
    ctx.audit(Some(req), e);
    notify_machine(ctx, &rec);
    Ok(rec)
}

/// Whether `a` is what `m` already has (saving it would change nothing).
pub fn unchanged(m: &Machine, a: &Assignment) -> bool {
    m.bty_image_ref == a.bty_image_ref
        && m.labels == a.labels
        && m.boot_mode == a.boot_mode
        && m.sanboot_drive == a.sanboot_drive
        && m.target_disk_serial == a.target_disk_serial
        && a.delta.is_none_or(|d| d == m.delta)
}

/// "Flash again": starts a new cycle of a machine's flashing assignment without editing it,
/// records `machine.reflash` and tells SSE subscribers. Refuses (409, saying what to set) a
/// machine whose mode does not flash or that lacks an image or a target disk. Shared by the
/// API, the machine page and the machines list's bulk action.
pub fn reflash_machine(ctx: &AppContext, req: &Request<'_>, mac: &str) -> Result<MachineRecord, HttpError> {
    let rec = ctx.db.machine(mac)?.ok_or_else(not_found)?;
    let m = &rec.machine;
    if !m.boot_mode.flashes() {
        return Err(HttpError::new(
            409,
            format!("{mac} boots in {} mode; set bty-flash-once to flash it", m.boot_mode.as_str()),
        ));
    }
    if m.bty_image_ref.is_none() || m.target_disk_serial.is_none() {
        return Err(HttpError::new(
            409,
            format!("{mac} needs an image and a target disk before it can flash"),
        ));
    }
    let rec = ctx.db.rearm_machine(mac, &crate::db::now())?.ok_or_else(not_found)?;
    let mut e = event("machine.reflash", ("machine", mac), "operator", format!("{mac}: flash again"));
    e.details = Some(serde_json::json!({
        "cycle": rec.cycle, "boot_mode": rec.machine.boot_mode.as_str(), "bty_image_ref": rec.machine.bty_image_ref,
    }));
    ctx.audit(Some(req), e);
    notify_machine(ctx, &rec);
    Ok(rec)
}

/// `POST /machines/{mac}/reflash`: [`reflash_machine`]; answers the machine.
pub fn reflash(ctx: &AppContext, req: &Request<'_>, mac: &str) -> Reply {
    let mac = parse_mac(mac)?;
    let rec = reflash_machine(ctx, req, &mac)?;
    Ok(Response::json(200, &rec.machine))
}

/// `DELETE /machines/{mac}`.
pub fn delete(ctx: &AppContext, req: &Request<'_>, mac: &str) -> Reply {
    let mac = parse_mac(mac)?;
    if !remove_machine(ctx, req, &mac)? {
        return Err(not_found());
    }
    Ok(Response::no_content())
}

/// Deletes a machine (canonical MAC), its live progress, records the event and tells SSE
/// subscribers; whether it existed. Shared by the API and the UI.
pub fn remove_machine(ctx: &AppContext, req: &Request<'_>, mac: &str) -> Result<bool, HttpError> {
    if !ctx.db.delete_machine(mac)? {
        return Ok(false);
    }
    ctx.progress.lock().unwrap_or_else(|p| p.into_inner()).remove(mac);
    ctx.audit(Some(req), event("machine.deleted", ("machine", mac), "operator", format!("{mac} deleted")));
    ctx.bus.publish("machine-deleted", &serde_json::json!({ "mac": mac }));
    Ok(true)
}

fn attachment(mac: &str, what: &str, json: String) -> Response {
    Response::new(200, Body::Bytes(json.into_bytes())).header("Content-Type", "application/json").header(
        "Content-Disposition",
        format!("attachment; filename=\"{}-{what}.json\"", mac.replace(':', "-")),
    )
}

/// `GET /machines/{mac}/lshw.json`: the stored hardware blob as posted.
pub fn lshw(ctx: &AppContext, _req: &Request<'_>, mac: &str) -> Reply {
    let mac = parse_mac(mac)?;
    let blob =
        ctx.db.machine_lshw(&mac)?.ok_or_else(not_found)?.ok_or_else(|| HttpError::not_found("no lshw"))?;
    Ok(attachment(&mac, "lshw", blob))
}

/// `GET /machines/{mac}/disks.json`: the last inventory's disks.
pub fn disks(ctx: &AppContext, _req: &Request<'_>, mac: &str) -> Reply {
    let mac = parse_mac(mac)?;
    let rec = ctx.db.machine(&mac)?.ok_or_else(not_found)?;
    let disks = rec.machine.known_disks.ok_or_else(|| HttpError::not_found("no inventory"))?;
    Ok(attachment(&mac, "disks", serde_json::to_string(&disks).unwrap_or_default()))
}
