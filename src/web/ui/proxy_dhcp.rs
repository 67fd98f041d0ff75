//! `POST /ui/settings/proxy-dhcp`: the Settings page's proxy-DHCP switch (form fields
//! `enabled`, `subnet`, `interface`, `server`). Bad settings come back as the Settings page
//! with the reason; the switch itself is `handlers::proxy_dhcp::switch`.

use crate::web::context::AppContext;
use crate::web::handlers::{proxy_dhcp, SMALL_JSON};
use crate::web::request::Request;
use crate::web::response::{HttpError, Reply, Response};
use crate::wire::ProxyDhcpSettings;

/// `POST /ui/settings/proxy-dhcp`.
pub fn save(ctx: &AppContext, req: &Request<'_>) -> Reply {
    let form = req.form(SMALL_JSON)?;
    let s = ProxyDhcpSettings {
        enabled: matches!(super::field(&form, "enabled"), "on" | "true" | "1"),
        subnet: super::field(&form, "subnet").to_string(),
        interface: super::field(&form, "interface").to_string(),
        server: super::field(&form, "server").to_string(),
    };
    match proxy_dhcp::switch(ctx, req, &s) {
        Ok(()) => Ok(Response::see_other("/ui/settings#proxy-dhcp")),
        Err(e) => Err(HttpError::new(400, format!("proxy-DHCP not changed: {e}"))),
    }
}
