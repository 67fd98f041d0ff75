//! The audit log API (reference §6.3) and the per-machine SSE stream.

use crate::db::EventFilter;
use crate::web::context::AppContext;
use crate::web::request::Request;
use crate::web::response::{Body, HttpError, Reply, Response};
use crate::wire::EventPage;

/// `GET /events?kind=&subject_kind=&subject_id=&actor=&source_ip=&failed=&before_id=&limit=&q=`.
pub fn list(ctx: &AppContext, req: &Request<'_>) -> Reply {
    let text = |k: &str| req.query(k).filter(|v| !v.is_empty()).map(str::to_string);
    let int = |k: &str| -> Result<Option<i64>, HttpError> {
        match req.query(k).filter(|v| !v.is_empty()) {
            Some(v) => {
                v.parse().map(Some).map_err(|_| HttpError::new(422, format!("{k} must be an integer")))
            }
            None => Ok(None),
        }
    };
    let filter = filter_from(text, int("before_id")?, int("limit")?.unwrap_or(50).clamp(1, 500) as u32);
    Ok(Response::json(200, &EventPage { events: ctx.db.events(&filter)? }))
}

/// The reference's text filters (§6.3) read through `text`, which returns a query value or
/// `None` when absent or empty; shared by the API and the UI's events page, which differ only
/// in how they clean values and in their cursor and page size.
pub fn filter_from(text: impl Fn(&str) -> Option<String>, before_id: Option<i64>, limit: u32) -> EventFilter {
    EventFilter {
        kind: text("kind"),
        subject_kind: text("subject_kind"),
        subject_id: text("subject_id"),
        actor: text("actor"),
        source_ip: text("source_ip"),
        failed: text("failed").is_some(),
        unacknowledged: text("unacknowledged").is_some(),
        q: text("q"),
        before_id,
        limit,
    }
}

/// `POST /events/{id}/ack`.
pub fn ack(ctx: &AppContext, _req: &Request<'_>, id: &str) -> Reply {
    let id: i64 = id.parse().map_err(|_| HttpError::not_found("event not found"))?;
    if !ctx.db.ack_event(id, true)? {
        return Err(HttpError::not_found("event not found"));
    }
    Ok(Response::json(200, &serde_json::json!({ "id": id, "acknowledged": true })))
}

/// `GET /events/machines`: SSE; `event: machine` with a `Machine` JSON per change,
/// `event: machine-deleted` with `{"mac"}`, `event: progress` with live flash progress.
pub fn machines_stream(ctx: &AppContext, _req: &Request<'_>) -> Reply {
    let sub = ctx.bus.subscribe().ok_or_else(|| {
        HttpError::new(503, "too many live streams; retry later").header("Retry-After", "5")
    })?;
    Ok(Response::new(200, Body::Events(sub)))
}
