//! `GET /ui/account`: change the admin password and manage API tokens for scripts.
//!
//! A new password is stored as a PBKDF2 hash in the database settings
//! ([`auth::PASSWORD_SETTING`]) and from then on overrides the configured or generated one; the
//! generated `admin-password` file is removed (it no longer opens a session) and the page says so. A change ends
//! every other session and, when the operator ticks the box, revokes every API token. A new API token
//! is shown exactly once, on the page that created it.

use super::view::{self, Page};
use crate::web::auth;
use crate::web::context::{event, AppContext};
use crate::web::handlers::{tokens, SMALL_JSON};
use crate::web::request::{Principal, Request};
use crate::web::response::{HttpError, Reply, Response};
use std::collections::BTreeMap;

/// Shortest password accepted on the account page.
const MIN_PASSWORD: usize = 10;

fn render(
    ctx: &AppContext,
    req: &Request<'_>,
    status: u16,
    errors: BTreeMap<&str, String>,
    new_token: Option<serde_json::Value>,
) -> Reply {
    let toks = ctx.db.tokens()?;
    let overridden = ctx.db.setting(auth::PASSWORD_SETTING)?.is_some();
    let source = if overridden {
        "set on this page (stored hashed in the database)"
    } else if ctx.config.admin_password.is_empty() {
        "generated at first start (see admin-password in the state directory)"
    } else {
        "from the configuration ([admin] password)"
    };
    // Said on the page: a stale file would otherwise look like the way in.
    let file_note = match auth::generated_password_file(&ctx.config) {
        Some(path) if overridden && !path.exists() => Some(format!(
            "The password generated at first start ({}) was removed when the password was changed here.",
            path.display()
        )),
        Some(path) if !overridden => Some(format!("It is in {} (mode 0600).", path.display())),
        _ => None,
    };
    let page = Page {
        title: "Account",
        nav: "account",
        intro: "The admin password for this browser UI, and API tokens for scripts (Authorization: Bearer).",
    };
    let data = serde_json::json!({ "tokens": toks, "errors": errors, "new_token": new_token, "source": source, "set": overridden, "file_note": file_note, "min_password": MIN_PASSWORD });
    view::render(ctx, req, status, "account.html", page, data)
}

/// `GET /ui/account`.
pub fn page(ctx: &AppContext, req: &Request<'_>) -> Reply {
    render(ctx, req, 200, BTreeMap::new(), None)
}

/// `POST /ui/account/password` (form `current`, `new`, `confirm`).
pub fn password(ctx: &AppContext, req: &Request<'_>) -> Reply {
    let form = req.form(SMALL_JSON)?;
    let (current, new, confirm) =
        (super::field(&form, "current"), super::field(&form, "new"), super::field(&form, "confirm"));
    let mut errors = BTreeMap::new();
    if !auth::password_matches(ctx, current) {
        errors.insert("current", "This is not the current password.".to_string());
    }
    if new.chars().count() < MIN_PASSWORD {
        errors.insert("new", format!("Use at least {MIN_PASSWORD} characters."));
    } else if new != confirm {
        errors.insert("confirm", "The two new passwords differ.".to_string());
    }
    if !errors.is_empty() {
        return render(ctx, req, 422, errors, None);
    }
    ctx.db.set_setting(auth::PASSWORD_SETTING, Some(&auth::hash_password(new)?))?;
    // Whoever knew the old password may hold a session or a token: the sessions end (all but
    // this one), and the tokens too when the operator asks (scripts would need new ones).
    let keep = match &req.principal {
        Some(Principal::Session { id_hash }) => Some(id_hash.as_str()),
        _ => None,
    };
    let sessions_ended = ctx.db.delete_other_sessions(keep)?;
    let revoke = !super::field(&form, "revoke_tokens").is_empty();
    let tokens_revoked = if revoke { ctx.db.delete_all_tokens()? } else { 0 };
    let file_removed = auth::remove_stale_password_file(&ctx.config)?;
    let mut e = event("auth.password.changed", ("auth", "operator"), "operator", "admin password changed");
    e.details = Some(
        serde_json::json!({ "sessions_ended": sessions_ended, "tokens_revoked": tokens_revoked, "generated_file_removed": file_removed }),
    );
    ctx.audit(Some(req), e);
    Ok(Response::see_other(if revoke {
        "/ui/account?done=password-tokens"
    } else {
        "/ui/account?done=password"
    }))
}

/// `POST /ui/account/tokens` (form `name`): creates a token and shows its value once.
pub fn create_token(ctx: &AppContext, req: &Request<'_>) -> Reply {
    match tokens::create(ctx, req) {
        Ok(resp) => {
            let value: serde_json::Value = serde_json::from_slice(resp.body_bytes()).unwrap_or_default();
            render(ctx, req, 201, BTreeMap::new(), Some(value))
        }
        Err(e) if e.status == 422 => {
            let msg = e.detail.as_str().unwrap_or("invalid name").to_string();
            render(ctx, req, 422, BTreeMap::from([("token_name", msg)]), None)
        }
        Err(e) => Err(e),
    }
}

/// `POST /ui/account/tokens/{id}/revoke`.
pub fn revoke_token(ctx: &AppContext, req: &Request<'_>, id: &str) -> Reply {
    match tokens::delete(ctx, req, id) {
        Ok(_) => Ok(Response::see_other("/ui/account?done=revoked")),
        Err(e) if e.status == 404 => {
            Err(HttpError::not_found("no such token; it may have been revoked already"))
        }
        Err(e) => Err(e),
    }
}
