//! `GET /ui/machines`: every machine in a table with search, filter, sort and pagination done
//! on the server from query parameters (so links and the back button work without JavaScript),
//! and `POST /ui/machines`: add a machine by MAC.
//!
//! Rows are built from the same records the JSON API returns; `bty.js` keeps the table current
//! from the SSE stream (`/events/machines`) by patching progress in place and re-fetching this
//! page's table body when a machine changes.

use super::lifecycle::{self, Lifecycle};
use super::view::{self, Page};
use crate::db::MachineRecord;
use crate::web::context::AppContext;
use crate::web::handlers::machines::{reflash_machine, save_assignment};
use crate::web::handlers::pxe::next_decision;
use crate::web::request::Request;
use crate::web::response::{Reply, Response};
use crate::wire::MachineUpsert;
use std::collections::HashMap;

/// Page sizes offered.
const PER_PAGE: [usize; 4] = [25, 50, 100, 200];

/// One table row.
#[derive(serde::Serialize)]
pub struct Row {
    mac: String,
    labels: Vec<String>,
    boot_mode: &'static str,
    life: Lifecycle,
    image: Option<String>,
    image_ref: Option<String>,
    last_seen_at: Option<String>,
    last_seen_ip: Option<String>,
    last_flashed_at: Option<String>,
    discovered: bool,
    /// The agent's reason, while the last flash's failure is the machine's state.
    reason: Option<String>,
    /// What the next PXE boot does, for failed machines.
    next: Option<&'static str>,
}

/// The list view's query: what to show and in which order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ListQuery {
    /// Substring over MAC, labels, image name and ref, IP.
    pub q: String,
    /// `all`, `unassigned`, `flashing`, `failed`, `assigned`.
    pub filter: String,
    /// `mac`, `image`, `mode`, `state`, `seen`, `flashed`.
    pub sort: String,
    /// Descending order.
    pub desc: bool,
    /// 1-based page.
    pub page: usize,
    /// Rows per page.
    pub per_page: usize,
}

impl ListQuery {
    /// Parses the query string; unknown values fall back to the defaults.
    pub fn parse(req: &Request<'_>) -> ListQuery {
        let pick = |k: &str, allowed: &[&str]| {
            req.query(k).filter(|v| allowed.contains(v)).unwrap_or(allowed[0]).to_string()
        };
        let per_page = req.query("per_page").and_then(|v| v.parse().ok()).filter(|n| PER_PAGE.contains(n));
        ListQuery {
            q: req.query("q").unwrap_or("").trim().to_string(),
            filter: pick("filter", &["all", "unassigned", "assigned", "flashing", "failed"]),
            sort: pick("sort", &["mac", "image", "mode", "state", "seen", "flashed"]),
            desc: req.query("dir") == Some("desc"),
            page: req.query("page").and_then(|v| v.parse().ok()).filter(|p| *p >= 1).unwrap_or(1),
            per_page: per_page.unwrap_or(PER_PAGE[0]),
        }
    }
}

fn row(ctx: &AppContext, req: &Request<'_>, rec: &MachineRecord, names: &HashMap<String, String>) -> Row {
    let m = &rec.machine;
    let failed = rec.failed_now();
    let next =
        if failed { next_decision(ctx, req, rec).ok().map(|d| lifecycle::next_boot(&d)) } else { None };
    Row {
        mac: m.mac.clone(),
        labels: m.labels.clone(),
        boot_mode: m.boot_mode.as_str(),
        life: lifecycle::of(rec, lifecycle::live(ctx, &m.mac).as_ref()),
        image: m
            .bty_image_ref
            .as_ref()
            .map(|r| names.get(r).cloned().unwrap_or_else(|| format!("unknown {}", &r[..12.min(r.len())]))),
        image_ref: m.bty_image_ref.clone(),
        last_seen_at: m.last_seen_at.clone(),
        last_seen_ip: m.last_seen_ip.clone(),
        last_flashed_at: m.last_flashed_at.clone(),
        // Discovered and untouched: an operator who parked it (any other mode) has seen it.
        discovered: m.discovered_at.is_some()
            && m.bty_image_ref.is_none()
            && m.boot_mode == crate::wire::BootMode::BtyInventory,
        reason: if failed {
            Some(m.last_flash_reason.clone().unwrap_or_else(|| "no reason given".into()))
        } else {
            None
        },
        next,
    }
}

fn matches(r: &Row, q: &ListQuery) -> bool {
    let filter_ok = match q.filter.as_str() {
        "unassigned" => r.discovered,
        "assigned" => r.image_ref.is_some(),
        "flashing" => r.life.live.is_some(),
        "failed" => r.life.tone == "bad",
        _ => true,
    };
    if !filter_ok {
        return false;
    }
    if q.q.is_empty() {
        return true;
    }
    let needle = q.q.to_lowercase();
    let hay = [
        Some(r.mac.as_str()),
        r.image.as_deref(),
        r.image_ref.as_deref(),
        r.last_seen_ip.as_deref(),
        Some(r.boot_mode),
        Some(r.life.label.as_str()),
    ];
    hay.into_iter()
        .flatten()
        .chain(r.labels.iter().map(String::as_str))
        .any(|h| h.to_lowercase().contains(&needle))
}

fn sort(rows: &mut [Row], q: &ListQuery) {
    let key = |r: &Row| -> String {
        match q.sort.as_str() {
            "image" => r.image.clone().unwrap_or_default(),
            "mode" => r.boot_mode.to_string(),
            "state" => r.life.label.clone(),
            "seen" => r.last_seen_at.clone().unwrap_or_default(),
            "flashed" => r.last_flashed_at.clone().unwrap_or_default(),
            _ => r.mac.clone(),
        }
    };
    rows.sort_by(|a, b| key(a).cmp(&key(b)).then_with(|| a.mac.cmp(&b.mac)));
    if q.desc {
        rows.reverse();
    }
}

/// Rows after filter and sort, the page shown, and the number of pages.
pub fn rows(ctx: &AppContext, req: &Request<'_>, q: &ListQuery) -> crate::Result<(Vec<Row>, usize, usize)> {
    let names: HashMap<String, String> =
        ctx.db.images()?.into_iter().map(|i| (i.image_ref, i.name)).collect();
    let mut all: Vec<Row> =
        ctx.db.machines()?.iter().map(|rec| row(ctx, req, rec, &names)).filter(|r| matches(r, q)).collect();
    sort(&mut all, q);
    let total = all.len();
    let pages = total.div_ceil(q.per_page).max(1);
    let page = q.page.min(pages);
    let shown = all.into_iter().skip((page - 1) * q.per_page).take(q.per_page).collect();
    Ok((shown, total, pages))
}

fn render(
    ctx: &AppContext,
    req: &Request<'_>,
    status: u16,
    add_error: Option<String>,
    add_mac: &str,
    bulk: Option<Bulk>,
) -> Reply {
    let q = ListQuery::parse(req);
    let (rows, total, pages) = rows(ctx, req, &q)?;
    let page = Page {
        title: "Machines",
        nav: "machines",
        intro:
            "Every machine that booted from this server or was added by hand. Click a MAC to assign an image.",
    };
    let data = serde_json::json!({ "rows": rows, "total": total, "pages": pages, "q": q.clone(), "page_no": q.page.min(pages), "per_page_options": PER_PAGE, "add_error": add_error, "add_mac": add_mac, "bulk": bulk });
    view::render(ctx, req, status, "machines.html", page, data)
}

/// The outcome of a bulk "Flash again", shown above the table.
#[derive(serde::Serialize)]
pub struct Bulk {
    armed: Vec<String>,
    skipped: Vec<(String, String)>,
}

/// `POST /ui/machines/reflash` (form `mac`, repeated): "Flash again" for the selected machines;
/// machines that cannot flash are skipped with the reason, the rest are armed.
pub fn reflash(ctx: &AppContext, req: &Request<'_>) -> Reply {
    let form = req.form(crate::web::handlers::SMALL_JSON)?;
    let mut bulk = Bulk { armed: Vec::new(), skipped: Vec::new() };
    let picked: Vec<&str> = form.iter().filter(|(k, _)| k == "mac").map(|(_, v)| v.trim()).collect();
    if picked.is_empty() {
        let msg = "Select machines with the boxes in the first column, then Flash again.".to_string();
        return render(ctx, req, 422, Some(msg), "", None);
    }
    for raw in picked {
        let Some(mac) = crate::wire::normalize_mac(raw) else {
            bulk.skipped.push((raw.to_string(), "not a MAC address".into()));
            continue;
        };
        match reflash_machine(ctx, req, &mac) {
            Ok(_) => bulk.armed.push(mac),
            Err(e) => bulk.skipped.push((mac, e.detail_text())),
        }
    }
    render(ctx, req, 200, None, "", Some(bulk))
}

/// `GET /ui/machines?q=&filter=&sort=&dir=&page=&per_page=`.
pub fn page(ctx: &AppContext, req: &Request<'_>) -> Reply {
    render(ctx, req, 200, None, "", None)
}

/// `POST /ui/machines` (form `mac`): adds a machine booting its local disk and opens it; an
/// existing MAC just opens.
pub fn add(ctx: &AppContext, req: &Request<'_>) -> Reply {
    let form = req.form(crate::web::handlers::SMALL_JSON)?;
    let raw = super::field(&form, "mac");
    let Some(mac) = crate::wire::normalize_mac(raw) else {
        let msg = format!("{raw:?} is not a MAC address; write it as aa:bb:cc:dd:ee:ff");
        return render(ctx, req, 422, Some(msg), raw, None);
    };
    if ctx.db.machine(&mac)?.is_none() {
        let upsert = MachineUpsert {
            bty_image_ref: None,
            labels: Vec::new(),
            boot_mode: "ipxe-exit".into(),
            sanboot_drive: None,
            target_disk_serial: None,
            delta: None,
        };
        let a = upsert.validate().map_err(crate::web::response::HttpError::unprocessable)?;
        save_assignment(ctx, req, &mac, &a)?;
    }
    Ok(Response::see_other(&format!("/ui/machines/{mac}?done=added")))
}
