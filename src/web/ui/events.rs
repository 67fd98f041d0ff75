//! `GET /ui/events`: the audit log with one `?q=` search over every column, click-to-pivot
//! filters (kind, actor, address, subject), failures highlighted, and a cursor for older pages;
//! `POST /ui/events/ack` acknowledges one event or every ticked one.

use super::view::{self, encode_component, Page};
use crate::web::context::AppContext;
use crate::web::handlers::events;
use crate::web::handlers::SMALL_JSON;
use crate::web::request::Request;
use crate::web::response::{HttpError, Reply, Response};

/// Events per page.
const PAGE: u32 = 50;

/// The filters a page link may carry, in the order chips show them.
const PIVOTS: [&str; 5] = ["kind", "actor", "source_ip", "subject_id", "subject_kind"];

/// `GET /ui/events?q=&kind=&actor=&source_ip=&subject_id=&failed=&unacknowledged=&before_id=`.
pub fn page(ctx: &AppContext, req: &Request<'_>) -> Reply {
    let text = |k: &str| req.query(k).map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
    let before_id = match text("before_id") {
        Some(v) => {
            Some(v.parse::<i64>().map_err(|_| HttpError::bad_request("before_id must be an event id"))?)
        }
        None => None,
    };
    let filter = events::filter_from(text, before_id, PAGE + 1);
    let mut events = ctx.db.events(&filter)?;
    let more = events.len() > PAGE as usize;
    events.truncate(PAGE as usize);
    let older = if more { events.last().map(|e| e.id) } else { None };
    // The current filters without the cursor, for chips, pagination and the ack redirect.
    let kept: Vec<(String, String)> = req
        .query
        .iter()
        .filter(|(k, v)| {
            k != "before_id"
                && !v.is_empty()
                && (PIVOTS.contains(&k.as_str()) || ["q", "failed", "unacknowledged"].contains(&k.as_str()))
        })
        .cloned()
        .collect();
    let chips: Vec<(String, String)> =
        kept.iter().filter(|(k, _)| PIVOTS.contains(&k.as_str())).cloned().collect();
    let qs: String =
        kept.iter().map(|(k, v)| format!("{}={}&", encode_component(k), encode_component(v))).collect();
    let page = Page {
        title: "Events",
        nav: "events",
        intro: "Everything bty-web did or was told, newest first. Click a kind, actor, address or MAC to show only those; failures are highlighted until acknowledged.",
    };
    let data = serde_json::json!({ "events": events, "older": older, "chips": chips, "qs": qs, "q": text("q").unwrap_or_default(), "failed": filter.failed, "unacknowledged": filter.unacknowledged, "paged": before_id.is_some(), "here": format!("/ui/events?{qs}") });
    view::render(ctx, req, 200, "events.html", page, data)
}

/// `POST /ui/events/ack`: `one=ID` acknowledges that event; otherwise every `id=ID` ticked.
/// Returns to `back` when it is an events page.
pub fn ack(ctx: &AppContext, req: &Request<'_>) -> Reply {
    let form = req.form(SMALL_JSON)?;
    let one = super::field(&form, "one");
    let ids: Vec<&str> = if one.is_empty() {
        form.iter().filter(|(k, _)| k == "id").map(|(_, v)| v.as_str()).collect()
    } else {
        vec![one]
    };
    if ids.is_empty() {
        return Err(HttpError::bad_request("tick at least one event to acknowledge"));
    }
    for id in ids {
        let id: i64 =
            id.trim().parse().map_err(|_| HttpError::bad_request(format!("not an event id: {id:?}")))?;
        ctx.db.ack_event(id, true)?;
    }
    let back = super::field(&form, "back");
    let back =
        if back.starts_with("/ui/events") && !back.contains(['\r', '\n']) { back } else { "/ui/events?" };
    let sep = if back.ends_with('?') || back.ends_with('&') {
        ""
    } else if back.contains('?') {
        "&"
    } else {
        "?"
    };
    Ok(Response::see_other(&format!("{back}{sep}done=acked")))
}
