//! The PXE control plane (compatible, reference §4.4–4.8, with SPEC §4's fixes): the bootstrap
//! script, the per-machine script and plan (one decision, `plan::decide`), and what the netboot
//! agent reports back (status, inventory, and our live progress).
//!
//! `/pxe/{mac}` and `/plan` never depend on a write: when the contact cannot be recorded (a
//! full or read-only disk) they answer from what is stored, and a MAC that is not stored (or
//! is beyond the `[limits]` discovery caps) is served the local-disk exit without a row, since
//! an inventory boot whose report cannot be kept would only loop.

use super::{notify_machine, parse_mac, SMALL_JSON};
use crate::db::{Contact, DiscoveryCaps, MachineRecord, StatusReport};
use crate::plan::{boot_state, decide, plan_for, plan_kind, Decision, ImageTarget, MachineState, Phase};
use crate::web::context::{event, AppContext};
use crate::web::request::Request;
use crate::web::response::{HttpError, Reply, Response};
use crate::web::templates::{self, ScriptVars};
use crate::wire::{BootMode, FlashOutcome, InventoryPost, Machine, Progress, PxeStatus, MAX_LSHW_BYTES};

const SCRIPT: &str = "text/plain; charset=utf-8";

/// Room in an inventory body beyond its `lshw`: 64 disks and JSON overhead.
const INVENTORY_OVERHEAD: u64 = 1 << 20;

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
        delta: m.delta,
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

/// A MAC served without a row: it boots its local disk.
fn unstored(mac: &str) -> MachineRecord {
    let mode = BootMode::IpxeExit;
    let machine = Machine {
        mac: mac.to_string(),
        bty_image_ref: None,
        labels: Vec::new(),
        discovered_at: None,
        last_seen_at: None,
        last_seen_ip: None,
        boot_mode: mode,
        sanboot_drive: None,
        last_flashed_at: None,
        known_disks: None,
        known_disks_at: None,
        target_disk_serial: None,
        created_at: String::new(),
        updated_at: String::new(),
        last_flash_status: None,
        last_flash_seconds: None,
        last_flash_bytes: None,
        last_flashed_image_sha256: None,
        last_flash_reason: None,
        last_flash_phase: None,
        last_flash_figures: None,
        delta: true,
        boot_state: boot_state(mode, Phase::Pending).to_string(),
    };
    MachineRecord { machine, cycle: 0, phase: Phase::Pending, has_lshw: false, last_flash_cycle: None }
}

/// Discovery and `last_seen` for `/pxe/{mac}` and `/plan`, then the decision. Whether the
/// contact is stored or not, the client gets an answer (see the module comment).
fn contact(
    ctx: &AppContext,
    req: &Request<'_>,
    raw: &str,
) -> Result<(MachineRecord, Option<ImageTarget>, Decision), HttpError> {
    let mac = parse_mac(raw)?;
    let limits = ctx.limits();
    let caps = DiscoveryCaps { per_hour: limits.discovery_per_hour, total: limits.discovery_max };
    let rec = match ctx.db.machine_contact(&mac, &req.client_ip, &crate::db::now(), caps) {
        Ok(Contact::Stored { rec, created }) => {
            if created {
                let mut e =
                    event("machine.discovered", ("machine", &mac), "pxe-client", format!("{mac} discovered"));
                e.details = Some(serde_json::json!({
                    "bty_image_ref": null, "boot_mode": "bty-inventory", "sanboot_drive": null, "labels": [],
                    "target_disk_serial": null,
                }));
                ctx.audit(Some(req), e);
            }
            *rec
        }
        Ok(Contact::Refused) => {
            let mut e = event(
                "machine.discovery_limited",
                ("machine", ""),
                "pxe-client",
                "unknown MACs beyond the discovery limits served the local disk, not stored",
            );
            e.subject_id = None;
            e.details = Some(serde_json::json!({
                "first_mac": mac, "discovery_per_hour": limits.discovery_per_hour,
                "discovery_max": limits.discovery_max,
            }));
            ctx.audit_repeated(Some(req), e);
            unstored(&mac)
        }
        Err(err) => {
            ctx.unrecorded("the PXE contact", &err);
            ctx.db.machine(&mac).ok().flatten().unwrap_or_else(|| unstored(&mac))
        }
    };
    let image = image_target(ctx, req, rec.machine.bty_image_ref.as_deref())?;
    let decision = decide(&state(&rec), image.as_ref());
    Ok((rec, image, decision))
}

/// `GET /pxe/{mac}`: the iPXE script for this machine's mode and cycle.
pub fn script(ctx: &AppContext, req: &Request<'_>, raw: &str) -> Reply {
    let (rec, image, d) = contact(ctx, req, raw)?;
    let m = &rec.machine;
    if d.end_cycle {
        if let Err(err) = ctx.db.end_cycle(&m.mac, rec.cycle) {
            ctx.unrecorded("the end of a boot cycle", &err);
        }
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
    let mut details = d.offered_details(&state(&rec), image.as_ref());
    details["cycle"] = rec.cycle.into();
    e.details = Some(details);
    ctx.audit(Some(req), e);
    if let Ok(Some(fresh)) = ctx.db.machine(&m.mac) {
        notify_machine(ctx, &fresh);
    }
    Ok(Response::text(200, SCRIPT, text))
}

/// `GET /pxe/{mac}/plan`: what the netboot agent should do (agrees with `/pxe/{mac}`).
pub fn plan(ctx: &AppContext, req: &Request<'_>, raw: &str) -> Reply {
    let (rec, image, d) = contact(ctx, req, raw)?;
    let plan = plan_for(&d, &state(&rec), image.as_ref(), &ctx.base_url(req));
    let m = &rec.machine;
    let kind = plan_kind(&plan, m.boot_mode);
    let mut e =
        event("netboot.pxe.plan", ("machine", &m.mac), "pxe-client", format!("{} plan {kind}", m.mac));
    e.details =
        Some(serde_json::json!({ "plan": plan, "boot_mode": m.boot_mode.as_str(), "offer_kind": kind }));
    ctx.audit(Some(req), e);
    notify_machine(ctx, &rec);
    Ok(Response::json(200, &plan))
}

/// 404 for a report from a MAC with no machine row, logged as the reference does: `details` is
/// `{"signal": …}` (the reported status, `inventory` or our `progress`) plus `extra`.
fn orphan(
    ctx: &AppContext,
    req: &Request<'_>,
    mac: &str,
    signal: &str,
    extra: serde_json::Value,
) -> HttpError {
    let mut e =
        event("pxe.client.orphan", ("machine", mac), "pxe-client", format!("{signal} from unknown {mac}"));
    let mut details = serde_json::json!({ "signal": signal });
    if let (Some(d), serde_json::Value::Object(more)) = (details.as_object_mut(), extra) {
        d.extend(more);
    }
    e.details = Some(details);
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
    // The status's own figures, else the last progress post's (an agent whose status post
    // was retried without them, for an older server, still sent them there).
    let figures = body.figures.clone().or_else(|| live.as_ref().and_then(|l| l.progress.figures.clone()));
    let report = StatusReport {
        outcome: body.status,
        bytes: live.as_ref().map(|l| l.progress.bytes_written),
        image_sha256,
        reason: Some(body.reason.clone()).filter(|r| !r.is_empty()),
        phase: live.map(|l| l.progress.phase).filter(|p| !p.is_empty()),
        figures,
    };
    let Some(rec) = ctx.db.record_status(&mac, &report, &req.client_ip, &crate::db::now())? else {
        let signal = match body.status {
            FlashOutcome::Done => "done",
            FlashOutcome::Failed => "failed",
        };
        return Err(orphan(ctx, req, &mac, signal, serde_json::json!({})));
    };
    let e = match body.status {
        FlashOutcome::Done => {
            let mut e = event("machine.flashed", ("machine", &mac), "pxe-client", format!("{mac} flashed"));
            e.details = report.figures.as_ref().and_then(|f| serde_json::to_value(f).ok());
            e
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
    let lshw_max = ctx.limits().lshw_max_bytes;
    let post: InventoryPost = req.json(lshw_max.max(MAX_LSHW_BYTES as u64) + INVENTORY_OVERHEAD)?;
    let errors = post.validate();
    if !errors.is_empty() {
        return Err(HttpError::unprocessable(errors));
    }
    // As the reference: an lshw over the cap is not stored (the earlier blob stays) while the
    // disks are, and the event says `lshw: false`.
    let lshw = post.lshw.as_ref().filter(|v| !v.is_null()).map(|v| v.to_string());
    let oversized = lshw.as_ref().map(|t| t.len() as u64 > lshw_max).unwrap_or(false);
    let lshw = lshw.filter(|_| !oversized);
    // serde_json maps are sorted, so each disk is stored as a sorted-key object (as the reference).
    let disks: Vec<serde_json::Value> =
        post.disks.iter().filter_map(|d| serde_json::to_value(d).ok()).collect();
    let disks_json = serde_json::to_string(&disks).unwrap_or_else(|_| "[]".into());
    let Some(rec) =
        ctx.db.record_inventory(&mac, &disks_json, lshw.as_deref(), &req.client_ip, &crate::db::now())?
    else {
        let extra = serde_json::json!({ "disk_count": post.disks.len() });
        return Err(orphan(ctx, req, &mac, "inventory", extra));
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
    if oversized {
        crate::log_info!("inventory of {mac}: lshw larger than {lshw_max} bytes not stored");
    }
    ctx.audit(Some(req), e);
    notify_machine(ctx, &rec);
    Ok(Response::no_content())
}

/// `POST /pxe/{mac}/progress` (ours): live flash progress, kept in memory and pushed over SSE.
pub fn progress(ctx: &AppContext, req: &Request<'_>, raw: &str) -> Reply {
    let mac = parse_mac(raw)?;
    let mut p: Progress = req.json(SMALL_JSON)?;
    p.phase = p.phase.chars().filter(|c| !c.is_control()).take(32).collect();
    let Some(rec) = ctx.db.machine(&mac)? else {
        return Err(orphan(ctx, req, &mac, "progress", serde_json::json!({})));
    };
    // A post that arrives after `done` (agents post from another thread, and retries reorder
    // them) must not show a finished machine as flashing again.
    if rec.phase == Phase::Done {
        return Ok(Response::no_content());
    }
    let mut msg = serde_json::json!({ "mac": mac, "bytes_written": p.bytes_written, "total_bytes": p.total_bytes, "phase": p.phase });
    let shown = crate::web::progress::record(ctx, &mac, p);
    msg["rate"] = shown.rate.into();
    msg["eta_seconds"] = shown.eta_seconds.into();
    msg["stalled"] = shown.stalled.into();
    ctx.bus.publish("progress", &msg);
    Ok(Response::no_content())
}
