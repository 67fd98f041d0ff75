//! The browser UI under `/ui`: server-rendered pages, one file per page, over the same library
//! calls the JSON API uses.
//!
//! Every page is a plain handler returning HTML from a template in `templates/ui/` (rendered by
//! `view.rs`, the only file here that knows minijinja) with the stylesheet and script from
//! `static/` (`assets.rs`). Forms post url-encoded bodies with the session's CSRF token, which
//! the router checks; errors become a readable page in [`view::html`]. Pages work without
//! JavaScript; `bty.js` only adds live updates (SSE), uploads with a progress bar and confirms.
//! Nothing here runs SQL or long work: it reads through `db/` and calls the handlers' library
//! functions.

pub mod account;
pub mod assets;
pub mod backups;
pub mod dashboard;
pub mod events;
pub mod images;
pub mod lifecycle;
pub mod machine;
pub mod machines;
pub mod netboot;
pub mod proxy_dhcp;
pub mod settings;
pub mod view;

use super::context::AppContext;
use super::request::Request;
use super::response::{Reply, Response};

/// `GET /ui`: the dashboard is the front page.
pub fn root(_ctx: &AppContext, _req: &Request<'_>) -> Reply {
    Ok(Response::see_other("/ui/dashboard"))
}

/// The value of a url-encoded form field (the first one), trimmed.
pub fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim()).unwrap_or("")
}
