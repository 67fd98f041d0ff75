//! `GET|PUT /settings/proxy-dhcp`: the proxy-DHCP switch over the API (our addition). The work
//! is `web::proxy_dhcp`; this file parses, audits and replies.

use super::SMALL_JSON;
use crate::web::context::{event, AppContext};
use crate::web::proxy_dhcp;
use crate::web::request::Request;
use crate::web::response::{Reply, Response};
use crate::wire::ProxyDhcpSettings;

/// `GET /settings/proxy-dhcp`: a [`crate::wire::ProxyDhcpState`].
pub fn get(ctx: &AppContext, _req: &Request<'_>) -> Reply {
    Ok(Response::json(200, &proxy_dhcp::state(ctx)?))
}

/// `PUT /settings/proxy-dhcp` with a [`ProxyDhcpSettings`]: stores it, writes the dnsmasq
/// configuration, and answers with the new state (400 naming the problem on bad settings).
pub fn put(ctx: &AppContext, req: &Request<'_>) -> Reply {
    let s: ProxyDhcpSettings = req.json(SMALL_JSON)?;
    switch(ctx, req, &s)?;
    Ok(Response::json(200, &proxy_dhcp::state(ctx)?))
}

/// Applies a switch and records it in the audit log (shared with the Settings form).
pub fn switch(ctx: &AppContext, req: &Request<'_>, s: &ProxyDhcpSettings) -> crate::Result<()> {
    proxy_dhcp::apply(ctx, s)?;
    let summary = if s.enabled {
        format!(
            "proxy-DHCP switched on for {} (interface {:?}, server {:?})",
            s.subnet, s.interface, s.server
        )
    } else {
        "proxy-DHCP switched off".to_string()
    };
    let mut e = event("settings.proxy_dhcp", ("setting", "proxy-dhcp"), "operator", summary);
    e.details = serde_json::to_value(s).ok();
    ctx.audit(Some(req), e);
    Ok(())
}
