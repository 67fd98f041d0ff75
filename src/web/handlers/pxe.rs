//! The PXE control plane (compatible, reference §4.4–4.8, with SPEC §4's fixes): the bootstrap
//! script, the per-machine script and plan (one decision, `plan::decide`), and what the netboot
//! agent reports back (status, inventory, and our live progress).

use super::{notify_machine, parse_mac, SMALL_JSON};
use crate::db::{MachineRecord, StatusReport};
use crate::plan::{decide, plan_for, Decision, ImageTarget, MachineState};
use crate::web::context::{event, AppContext, LiveProgress};
use crate::web::request::Request;
use crate::web::response::{HttpError, Reply, Response};
use crate::web::templates::{self, ScriptVars};
use crate::wire::{FlashOutcome, InventoryPost, Progress, PxeStatus, MAX_LSHW_BYTES};

const SCRIPT: &str = "text/plain; charset=utf-8";

/// Largest inventory body: the 4 MiB lshw plus 64 disks and JSON overhead.
const INVENTORY_JSON: u64 = MAX_LSHW_BYTES as u64 + (1 << 20);

/// `GET /pxe-bootstrap.ipxe`.
pub fn bootstrap(ctx: &AppContext, req: &Request<'_>) -> Reply {
    let base = ctx.base_url(req);
    let host = base.trim_start_matches("http://");
    Ok(Response::text(200, SCRIPT, templates::bootstrap(host)?))
}

/// What the next PXE boot of `rec` will be offered (the same decision `/pxe/{mac}` makes).
pub fn next_decision(
    ctx: &AppContext,
    req: &Request<'_>,
    rec: &MachineRecord,
) -> Result<Decision, HttpError> {
    let image = image_target(ctx, req, rec.machine.bty_image_ref.as_deref())?;
    Ok(decide(&state(rec), image.as_ref()))
}

fn state(rec: &MachineRecord) -> MachineState<'_> {
    let m = &rec.machine;
    MachineState {
        mode: m.boot_mode,
        image_ref: m.bty_image_ref.as_deref(),
        target_disk_serial: m.target_disk_serial.as_deref(),
        sanboot_drive: m.sanboot_drive.as_deref(),
        phase: rec.phase,
    }
}

/// The bound image as the agent will fetch it, if the server knows the ref.
pub fn image_target(
    ctx: &AppContext,
    req: &Request<'_>,
    image_ref: Option<&str>,
) -> Result<Option<ImageTarget>, HttpError> {
    let Some(r) = image_ref else { return Ok(None) };
    let Some(row) = ctx.db.image(r)? else { return Ok(None) };
    let url = super::images::fetch_url(&ctx.base_url(req), &row);
    Ok(Some(ImageTarget { name: row.name, url, sha256: row.sha256, format: row.format }))
}

/// Discovery and `last_seen` for `/pxe/{mac}` and `/plan`, then the decision.
fn contact(
    ctx: &AppContext,
    req: &Request<'_>,
    raw: &str,
) -> Result<(MachineRecord, Option<ImageTarget>, Decision), HttpError> {
    let mac = parse_mac(raw)?;
    let (rec, created) = ctx.db.machine_contact(&mac, &req.client_ip, &crate::db::now())?;
    if created {
        let mut e = event("machine.discovered", ("machine", &mac), "pxe-client", format!("{mac} discovered"));
        e.details = Some(serde_json::json!({
            "bty_image_ref": null, "boot_mode": "bty-inventory", "sanboot_drive": null, "labels": [],
            "target_disk_serial": null,
        }));
        ctx.audit(Some(req), e);
    }
    let image = image_target(ctx, req, rec.machine.bty_image_ref.as_deref())?;
    let decision = decide(&state(&rec), image.as_ref());
    Ok((rec, image, decision))
}

/// `GET /pxe/{mac}`: the iPXE script for this machine's mode and cycle.
pub fn script(ctx: &AppContext, req: &Request<'_>, raw: &str) -> Reply {
    let (rec, _image, d) = contact(ctx, req, raw)?;
    let m = &rec.machine;
    if d.end_cycle {
        ctx.db.end_cycle(&m.mac, rec.cycle)?;
    }
    let base = ctx.base_url(req);
    let vars = ScriptVars {
        host: base.trim_start_matches("http://"),
        mac: &m.mac,
        boot_mode: m.boot_mode.as_str(),
        image_ref: m.bty_image_ref.as_deref(),
        serial: m.target_disk_serial.as_deref(),
        labels: &m.labels,
        kernel: &ctx.config.netboot.kernel,
        initrd: &ctx.config.netboot.initrd,
    };
    let text = templates::script(&d.offer, &vars)?;
    let mut e = event(
        "netboot.pxe.offered",
        ("machine", &m.mac),
        "pxe-client",
        format!("{} offered {}", m.mac, d.offer_kind),
    );
    e.details = Some(
        serde_json::json!({ "boot_mode": m.boot_mode.as_str(), "offer_kind": d.offer_kind, "cycle": rec.cycle }),
    );
    ctx.audit(Some(req), e);
    if let Some(fresh) = ctx.db.machine(&m.mac)? {
        notify_machine(ctx, &fresh);
    }
    Ok(Response::text(200, SCRIPT, text))
}

/// `GET /pxe/{mac}/plan`: what the netboot agent should do (agrees with `/pxe/{mac}`).
pub fn plan(ctx: &AppContext, req: &Request<'_>, raw: &str) -> Reply {
    let (rec, image, d) = contact(ctx, req, raw)?;
    let plan = plan_for(&d, &state(&rec), image.as_ref(), &ctx.base_url(req));
    let m = &rec.machine;
    let mut e = event(
        "netboot.pxe.plan",
        ("machine", &m.mac),
        "pxe-client",
        format!("{} plan {}", m.mac, d.offer_kind),
    );
    e.details = Some(
        serde_json::json!({ "plan": plan, "boot_mode": m.boot_mode.as_str(), "offer_kind": d.offer_kind }),
    );
    ctx.audit(Some(req), e);
    notify_machine(ctx, &rec);
    Ok(Response::json(200, &plan))
}

fn orphan(ctx: &AppContext, req: &Request<'_>, mac: &str, signal: &str) -> HttpError {
    let mut e =
        event("pxe.client.orphan", ("machine", mac), "pxe-client", format!("{signal} from unknown {mac}"));
    e.details = Some(serde_json::json!({ "signal": signal }));
    ctx.audit(Some(req), e);
    HttpError::not_found("machine not found")
}

/// `POST /pxe/{mac}/status`: `done` or `failed` from the netboot agent.
pub fn status(ctx: &AppContext, req: &Request<'_>, raw: &str) -> Reply {
    let mac = parse_mac(raw)?;
    let body: PxeStatus = req.json(SMALL_JSON)?;
    if body.reason.chars().count() > 500 {
        return Err(HttpError::unprocessable(vec![crate::wire::FieldError {
            loc: vec!["body".into(), "reason".into()],
            msg: "String should have at most 500 characters".into(),
            kind: "string_too_long".into(),
        }]));
    }
    let live = ctx.progress.lock().unwrap_or_else(|p| p.into_inner()).remove(&mac);
    let bound = ctx.db.machine(&mac)?.and_then(|r| r.machine.bty_image_ref);
    let image_sha256 = match bound {
        Some(r) => ctx.db.image(&r)?.and_then(|i| i.sha256),
        None => None,
    };
    let report = StatusReport {
        outcome: body.status,
        bytes: live.as_ref().map(|l| l.progress.bytes_written),
        image_sha256,
        reason: Some(body.reason.clone()).filter(|r| !r.is_empty()),
        phase: live.map(|l| l.progress.phase).filter(|p| !p.is_empty()),
    };
    let Some(rec) = ctx.db.record_status(&mac, &report, &req.client_ip, &crate::db::now())? else {
        return Err(orphan(ctx, req, &mac, "status"));
    };
    let e = match body.status {
        FlashOutcome::Done => {
            event("machine.flashed", ("machine", &mac), "pxe-client", format!("{mac} flashed"))
        }
        FlashOutcome::Failed => {
            let mut e = event(
                "machine.flash_failed",
                ("machine", &mac),
                "pxe-client",
                format!("{mac} flash failed: {}", body.reason),
            );
            e.details = Some(serde_json::json!({
                "reason": report.reason, "phase": rec.machine.last_flash_phase,
                "bytes_written": rec.machine.last_flash_bytes, "seconds": rec.machine.last_flash_seconds,
                "cycle": rec.cycle,
            }));
            e
        }
    };
    ctx.audit(Some(req), e);
    notify_machine(ctx, &rec);
    Ok(Response::no_content())
}

/// `POST /pxe/{mac}/inventory`: disks and hardware from the netboot agent.
pub fn inventory(ctx: &AppContext, req: &Request<'_>, raw: &str) -> Reply {
    let mac = parse_mac(raw)?;
    let post: InventoryPost = req.json(INVENTORY_JSON)?;
    let errors = post.validate();
    if !errors.is_empty() {
        return Err(HttpError::unprocessable(errors));
    }
    let lshw = match post.lshw.as_ref().filter(|v| !v.is_null()) {
        Some(v) => {
            let text = v.to_string();
            if text.len() > MAX_LSHW_BYTES {
                return Err(HttpError::new(413, format!("lshw larger than {MAX_LSHW_BYTES} bytes")));
            }
            Some(text)
        }
        None => None,
    };
    // serde_json maps are sorted, so each disk is stored as a sorted-key object (as the reference).
    let disks: Vec<serde_json::Value> =
        post.disks.iter().filter_map(|d| serde_json::to_value(d).ok()).collect();
    let disks_json = serde_json::to_string(&disks).unwrap_or_else(|_| "[]".into());
    let Some(rec) =
        ctx.db.record_inventory(&mac, &disks_json, lshw.as_deref(), &req.client_ip, &crate::db::now())?
    else {
        return Err(orphan(ctx, req, &mac, "inventory"));
    };
    let serials: Vec<&str> = post.disks.iter().filter_map(|d| d.serial.as_deref()).collect();
    let mut e = event(
        "machine.inventory",
        ("machine", &mac),
        "pxe-client",
        format!("{mac}: {} disk(s)", post.disks.len()),
    );
    e.details =
        Some(serde_json::json!({ "count": post.disks.len(), "serials": serials, "lshw": lshw.is_some() }));
    ctx.audit(Some(req), e);
    notify_machine(ctx, &rec);
    Ok(Response::no_content())
}

/// `POST /pxe/{mac}/progress` (ours): live flash progress, kept in memory and pushed over SSE.
pub fn progress(ctx: &AppContext, req: &Request<'_>, raw: &str) -> Reply {
    let mac = parse_mac(raw)?;
    let mut p: Progress = req.json(SMALL_JSON)?;
    p.phase = p.phase.chars().filter(|c| !c.is_control()).take(32).collect();
    if ctx.db.machine(&mac)?.is_none() {
        return Err(orphan(ctx, req, &mac, "progress"));
    }
    ctx.bus.publish(
        "progress",
        &serde_json::json!({ "mac": mac, "bytes_written": p.bytes_written, "total_bytes": p.total_bytes, "phase": p.phase }),
    );
    let live = LiveProgress { progress: p, at: crate::db::now() };
    ctx.progress.lock().unwrap_or_else(|p| p.into_inner()).insert(mac, live);
    Ok(Response::no_content())
}
