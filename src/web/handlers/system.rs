//! Small open routes: `/`, `/healthz`, `/version`.

use crate::web::context::AppContext;
use crate::web::request::Request;
use crate::web::response::{Reply, Response};

/// `GET /`: the browser UI lives under `/ui`.
pub fn root(_ctx: &AppContext, _req: &Request<'_>) -> Reply {
    Ok(Response::see_other("/ui/login"))
}

/// `GET /healthz`: the process is up and the database answers.
pub fn healthz(ctx: &AppContext, _req: &Request<'_>) -> Reply {
    ctx.db.setting("healthz")?;
    Ok(Response::json(200, &serde_json::json!({ "status": "ok" })))
}

/// `GET /version`.
pub fn version(_ctx: &AppContext, _req: &Request<'_>) -> Reply {
    Ok(Response::json(200, &serde_json::json!({ "version": crate::VERSION })))
}
