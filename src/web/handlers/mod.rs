//! Handlers: plain functions of (context, request[, path parameters]) returning a response,
//! grouped by resource. The router decides who may call them; they parse, act and reply.

pub mod auth;
pub mod backups;
pub mod boot;
pub mod events;
pub mod images;
pub mod machines;
pub mod proxy_dhcp;
pub mod pxe;
pub mod system;
pub mod tokens;

use super::context::AppContext;
use super::response::HttpError;
use crate::db::MachineRecord;

/// Largest JSON body for small API messages.
pub const SMALL_JSON: u64 = 64 << 10;

/// A MAC path parameter in canonical form, or the reference's 400.
pub fn parse_mac(raw: &str) -> Result<String, HttpError> {
    crate::wire::normalize_mac(raw).ok_or_else(|| HttpError::bad_request(format!("invalid MAC: '{raw}'")))
}

/// Tells SSE subscribers that one machine changed (one small message, not a page).
pub fn notify_machine(ctx: &AppContext, rec: &MachineRecord) {
    if let Ok(v) = serde_json::to_value(&rec.machine) {
        ctx.bus.publish("machine", &v);
    }
}
