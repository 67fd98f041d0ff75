//! API tokens for scripts: list, create (value shown once), revoke.

use super::SMALL_JSON;
use crate::web::auth;
use crate::web::context::{event, AppContext};
use crate::web::request::Request;
use crate::web::response::{HttpError, Reply, Response};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
}

/// `GET /api/tokens`.
pub fn list(ctx: &AppContext, _req: &Request<'_>) -> Reply {
    Ok(Response::json(200, &serde_json::json!({ "tokens": ctx.db.tokens()? })))
}

/// `POST /api/tokens {"name"}`: 201 with the token value, which is never shown again.
pub fn create(ctx: &AppContext, req: &Request<'_>) -> Reply {
    let name = if req.is_form() {
        req.form(SMALL_JSON)?.into_iter().find(|(k, _)| k == "name").map(|(_, v)| v).unwrap_or_default()
    } else {
        req.json::<NewToken>(SMALL_JSON)?.name
    };
    let name = name.trim().to_string();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(HttpError::new(422, "name must be 1-64 printable characters"));
    }
    let (row, value) = auth::create_token(ctx, &name)?;
    ctx.audit(
        Some(req),
        event(
            "auth.token.created",
            ("auth", &row.id.to_string()),
            "operator",
            format!("API token {name:?} created"),
        ),
    );
    Ok(Response::json(
        201,
        &serde_json::json!({ "id": row.id, "name": row.name, "token": value, "created_at": row.created_at }),
    ))
}

/// `DELETE /api/tokens/{id}`.
pub fn delete(ctx: &AppContext, req: &Request<'_>, id: &str) -> Reply {
    let id: i64 = id.parse().map_err(|_| HttpError::not_found("token not found"))?;
    if !ctx.db.delete_token(id)? {
        return Err(HttpError::not_found("token not found"));
    }
    ctx.audit(
        Some(req),
        event("auth.token.revoked", ("auth", &id.to_string()), "operator", format!("API token {id} revoked")),
    );
    Ok(Response::no_content())
}
