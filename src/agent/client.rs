//! The agent's side of bty-web's open PXE routes: inventory, plan, progress, status.
//!
//! Every call has a timeout, and every response's `Date` header is remembered so PID 1 can set
//! a clock that starts in 1970 or drifted (TLS to an OCI registry needs a sane clock). Status
//! codes are turned into errors here, once; the flow decides what a failure means (a 404 on
//! progress is an older server, not a problem). This module does not retry: the flow does,
//! where retrying is safe.

use crate::error::{Context, Error, ErrorKind, Result};
use crate::wire::{FlashFigures, FlashOutcome, InventoryPost, Plan, Progress, PxeStatus};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// How long any single request may take; a plan or status that does not arrive in this time
/// is a failure the flow reports on the console.
const TIMEOUT: Duration = Duration::from_secs(15);

/// A client for one machine (MAC) against one bty-web.
pub struct Client {
    base: String,
    mac: String,
    agent: ureq::Agent,
    last_date: Mutex<Option<SystemTime>>,
}

/// The plan as the server sent it: a known mode, or a mode this agent does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanReply {
    /// A plan this agent can act on.
    Known(Plan),
    /// A well-formed JSON object with a `mode` we do not know (a newer server); upstream's
    /// answer is to fall back to the interactive wizard.
    UnknownMode(String),
}

/// Normalises a `--server` value as upstream does: trim, drop a trailing `/`, add `http://`
/// when there is no scheme. An empty value means the default host name `bty-server`.
pub fn normalise_server(server: &str) -> String {
    let s = server.trim().trim_end_matches('/');
    let s = if s.is_empty() { "bty-server" } else { s };
    if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    }
}

impl Client {
    /// A client for `mac` against the server at `server` (normalised with [`normalise_server`]).
    pub fn new(server: &str, mac: &str) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT))
            .user_agent(format!("bty-plan-agent/{}", crate::VERSION))
            .build();
        Client {
            base: normalise_server(server),
            mac: mac.to_string(),
            agent: config.into(),
            last_date: Mutex::new(None),
        }
    }

    /// The normalised server base URL (`http://host:port`).
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/pxe/{}{tail}", self.base, self.mac)
    }

    /// The server's clock as of the last response that carried a `Date` header.
    pub fn server_date(&self) -> Option<SystemTime> {
        *self.last_date.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember_date(&self, resp: &ureq::http::Response<ureq::Body>) {
        let date = resp
            .headers()
            .get("date")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        if let Some(d) = date {
            *self.last_date.lock().unwrap_or_else(|p| p.into_inner()) = Some(d);
        }
    }

    /// POSTs a JSON body; returns the status code, body text for errors.
    fn post_json(&self, url: &str, body: &impl serde::Serialize) -> Result<u16> {
        let (status, text) = self.send_json(url, body)?;
        if !(200..300).contains(&status) && status != 404 {
            return Err(Error::failed(format!("POST {url}: HTTP {status}: {}", text.trim())));
        }
        Ok(status)
    }

    /// POSTs a JSON body; returns the status code and, for anything but a success, the body.
    fn send_json(&self, url: &str, body: &impl serde::Serialize) -> Result<(u16, String)> {
        let bytes = serde_json::to_vec(body).map_err(|e| Error::failed(format!("encoding request: {e}")))?;
        let mut resp = self
            .agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(&bytes[..])
            .map_err(|e| Error::failed(e.to_string()))
            .with_context(|| format!("POST {url}"))?;
        self.remember_date(&resp);
        let status = resp.status().as_u16();
        let text = match status {
            200..=299 => String::new(),
            _ => resp.body_mut().read_to_string().unwrap_or_default(),
        };
        Ok((status, text))
    }

    /// `POST /pxe/{mac}/inventory`. A 404 means the server does not know this MAC.
    pub fn post_inventory(&self, body: &InventoryPost) -> Result<()> {
        let url = self.url("/inventory");
        match self.post_json(&url, body)? {
            404 => {
                Err(Error::not_found(format!("POST {url}: HTTP 404: the server does not know {}", self.mac)))
            }
            _ => Ok(()),
        }
    }

    /// `GET /pxe/{mac}/plan`.
    pub fn plan(&self) -> Result<PlanReply> {
        let url = self.url("/plan");
        let mut resp = self
            .agent
            .get(&url)
            .header("Accept", "application/json")
            .call()
            .map_err(|e| Error::failed(e.to_string()))
            .with_context(|| format!("GET {url}"))?;
        self.remember_date(&resp);
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| Error::failed(e.to_string()))
            .with_context(|| format!("reading {url}"))?;
        if status != 200 {
            return Err(Error::failed(format!("GET {url}: HTTP {status}: {}", text.trim())));
        }
        parse_plan(&text).with_context(|| format!("GET {url}"))
    }

    /// `POST /pxe/{mac}/progress`. Returns `false` when the server does not have the route
    /// (404 from an older bty-web), so the caller stops posting.
    pub fn progress(&self, body: &Progress) -> Result<bool> {
        Ok(self.post_json(&self.url("/progress"), body)? != 404)
    }

    /// `POST /pxe/{mac}/status` with `done` or `failed`, a reason (cut to the 500 characters
    /// the server accepts) and the flash's figures. A server that refuses the figures (422:
    /// the reference's `/status` takes no unknown fields) gets the report again without them.
    pub fn status(&self, status: FlashOutcome, reason: &str, figures: Option<&FlashFigures>) -> Result<()> {
        let url = self.url("/status");
        let reason: String = reason.chars().take(500).collect();
        let mut body = PxeStatus { status, reason, figures: figures.cloned() };
        let (mut code, mut text) = self.send_json(&url, &body)?;
        if code == 422 && body.figures.is_some() {
            crate::log_info!(
                "the server refused the flash figures (an older bty-web); reporting without them"
            );
            body.figures = None;
            (code, text) = self.send_json(&url, &body)?;
        }
        match code {
            200..=299 => Ok(()),
            404 => {
                Err(Error::not_found(format!("POST {url}: HTTP 404: the server does not know {}", self.mac)))
            }
            _ => Err(Error::failed(format!("POST {url}: HTTP {code}: {}", text.trim()))),
        }
    }
}

/// Parses a plan body: a known plan, an unknown mode, or an error for anything else.
pub fn parse_plan(text: &str) -> Result<PlanReply> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Error::new(ErrorKind::Failed, format!("plan is not JSON: {e}")))?;
    let mode = value.get("mode").and_then(|m| m.as_str()).map(str::to_string);
    match serde_json::from_value::<Plan>(value) {
        Ok(plan) => Ok(PlanReply::Known(plan)),
        Err(e) => match mode.as_deref() {
            Some("flash" | "interactive" | "inventory" | "exit") => {
                Err(Error::failed(format!("plan is malformed: {e}")))
            }
            Some(other) => Ok(PlanReply::UnknownMode(other.to_string())),
            None => Err(Error::failed("plan has no \"mode\"")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_is_normalised_like_upstream() {
        let cases = [
            ("", "http://bty-server"),
            ("bty-server", "http://bty-server"),
            (" 10.0.0.1:8080/ ", "http://10.0.0.1:8080"),
            ("https://h/", "https://h"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalise_server(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn plans_of_every_known_mode_parse_and_unknown_modes_are_named() {
        let flash = r#"{"mode":"flash","image":"http://h/i.img","target_disk_serial":"S1","name":"i","disk_image_sha":"ab"}"#;
        assert!(matches!(parse_plan(flash).unwrap(), PlanReply::Known(Plan::Flash { .. })));
        assert_eq!(parse_plan(r#"{"mode":"exit"}"#).unwrap(), PlanReply::Known(Plan::Exit));
        assert_eq!(parse_plan(r#"{"mode":"inventory"}"#).unwrap(), PlanReply::Known(Plan::Inventory));
        assert_eq!(
            parse_plan(r#"{"mode":"interactive","catalog":"http://h/catalog.toml"}"#).unwrap(),
            PlanReply::Known(Plan::Interactive { catalog: Some("http://h/catalog.toml".into()) })
        );
        assert_eq!(parse_plan(r#"{"mode":"ramboot"}"#).unwrap(), PlanReply::UnknownMode("ramboot".into()));
        assert!(parse_plan(r#"{"mode":"flash"}"#).is_err(), "a flash plan without an image is an error");
        assert!(parse_plan("[1]").is_err());
        assert!(parse_plan("<html>").is_err());
    }
}
