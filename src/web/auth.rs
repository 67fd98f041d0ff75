//! Who is asking: browser sessions (signed `bty-token` cookie), API tokens (`Authorization:
//! Bearer`), the admin password check and the sign-in backoff per address and per account.
//!
//! A session cookie is `SID.EXPIRES.SIG` with `SIG = HMAC-SHA256(secret, "SID.EXPIRES")`; the
//! server also keeps the session (by the sha256 of SID) so logout really ends it. Expiry slides:
//! a cookie used after its first hour is re-issued for another 7 days. API tokens are random,
//! shown once, and stored as sha256 only. Every secret comparison is constant-time. Which routes
//! need a principal is the router's business; CSRF is in `csrf.rs`.

use super::context::AppContext;
use super::request::{Principal, Request};
use crate::error::{Context, Result};
use crate::source::hex;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session cookie's name (compatible with the reference).
pub const COOKIE: &str = "bty-token";

/// How long a session lives without use.
pub const SESSION_TTL_SECS: i64 = 7 * 24 * 3600;

/// A session is re-issued when older than this, so active users never expire.
const REFRESH_AFTER_SECS: i64 = 3600;

type HmacSha256 = hmac::Hmac<Sha256>;

/// `HMAC-SHA256(key, msg)`.
pub fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length, so this cannot fail.
    let mut m =
        <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key"));
    m.update(msg);
    m.finalize().into_bytes().into()
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// sha256 as hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> Result<String> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| crate::Error::failed(format!("reading random bytes: {e}")))?;
    Ok(hex(&buf))
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The database setting holding a password set on the account page: it overrides the configured
/// or generated one, so an operator can change it without editing files.
pub const PASSWORD_SETTING: &str = "admin.password_hash";

/// Where the first start wrote the generated admin password, when none is configured.
pub fn generated_password_file(config: &crate::config::Config) -> Option<std::path::PathBuf> {
    config.admin_password.is_empty().then(|| config.paths.state_dir.join("admin-password"))
}

/// Removes the generated password file once a password set on the account page replaced it: a
/// stale copy of a secret that no longer opens anything only misleads (and leaks nothing
/// useful, but an operator reading it would try it). Whether a file was removed.
pub fn remove_stale_password_file(config: &crate::config::Config) -> Result<bool> {
    let Some(path) = generated_password_file(config) else { return Ok(false) };
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("removing the stale {}", path.display())),
    }
}

/// PBKDF2 iterations for a stored password (slow enough to make a stolen database expensive to
/// brute-force, fast enough for one login).
const PBKDF2_ROUNDS: u32 = 60_000;

/// PBKDF2-HMAC-SHA256 (RFC 8018 §5.2) with one 32-byte output block.
fn pbkdf2_sha256(password: &[u8], salt: &[u8], rounds: u32) -> [u8; 32] {
    let keyed = <HmacSha256 as KeyInit>::new_from_slice(password)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key"));
    let mut first = keyed.clone();
    first.update(salt);
    first.update(&1u32.to_be_bytes());
    let mut u: [u8; 32] = first.finalize().into_bytes().into();
    let mut out = u;
    for _ in 1..rounds {
        let mut m = keyed.clone();
        m.update(&u);
        u = m.finalize().into_bytes().into();
        out.iter_mut().zip(&u).for_each(|(o, x)| *o ^= x);
    }
    out
}

/// Hashes a password for [`PASSWORD_SETTING`]: `pbkdf2-sha256$ROUNDS$SALT$HASH` (hex).
pub fn hash_password(password: &str) -> Result<String> {
    let salt = random_hex(16)?;
    let hash = hex(&pbkdf2_sha256(password.as_bytes(), salt.as_bytes(), PBKDF2_ROUNDS));
    Ok(format!("pbkdf2-sha256${PBKDF2_ROUNDS}${salt}${hash}"))
}

/// Whether `given` matches a stored `pbkdf2-sha256$…` hash (constant-time comparison).
pub fn verify_password(stored: &str, given: &str) -> bool {
    let parts: Vec<&str> = stored.split('$').collect();
    let [scheme, rounds, salt, want] = parts.as_slice() else { return false };
    let Ok(rounds) = rounds.parse::<u32>() else { return false };
    if *scheme != "pbkdf2-sha256" || rounds == 0 || rounds > 10_000_000 {
        return false;
    }
    ct_eq(hex(&pbkdf2_sha256(given.as_bytes(), salt.as_bytes(), rounds)).as_bytes(), want.as_bytes())
}

/// Whether `given` is the admin password: the one set on the account page when there is one,
/// else the configured or generated one, compared in constant time (via HMAC so lengths do not
/// leak either). A database error refuses.
pub fn password_matches(ctx: &AppContext, given: &str) -> bool {
    match ctx.db.setting(PASSWORD_SETTING) {
        Ok(Some(stored)) => verify_password(&stored, given),
        Ok(None) => {
            let a = hmac(&ctx.secret, given.as_bytes());
            let b = hmac(&ctx.secret, ctx.admin_password.as_bytes());
            ct_eq(&a, &b)
        }
        Err(_) => false,
    }
}

fn cookie_value(ctx: &AppContext, sid: &str, expires: i64) -> String {
    let payload = format!("{sid}.{expires}");
    let sig = hex(&hmac(&ctx.secret, payload.as_bytes()));
    format!("{payload}.{sig}")
}

/// The `Set-Cookie` value for a session cookie (empty value and `Max-Age=0` to delete it).
pub fn set_cookie(value: &str, max_age: i64) -> String {
    format!("{COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict")
}

/// Starts a session; returns the cookie value.
pub fn create_session(ctx: &AppContext, ip: &str) -> Result<String> {
    let sid = random_hex(32)?;
    let expires = unix_now() + SESSION_TTL_SECS;
    ctx.db.create_session(&sha256_hex(sid.as_bytes()), expires, ip).context("storing the session")?;
    Ok(cookie_value(ctx, &sid, expires))
}

/// A verified session: its id hash and, when expiry slid forward, the cookie to re-issue.
pub struct SessionCheck {
    /// sha256 of the session id.
    pub id_hash: String,
    /// A new cookie value to send back.
    pub refreshed: Option<String>,
}

/// Verifies a cookie value: signature, expiry, and that the session was not logged out.
pub fn check_session(ctx: &AppContext, value: &str) -> Result<Option<SessionCheck>> {
    let mut parts = value.rsplitn(2, '.');
    let (Some(sig), Some(payload)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    let want = hex(&hmac(&ctx.secret, payload.as_bytes()));
    if !ct_eq(want.as_bytes(), sig.as_bytes()) {
        return Ok(None);
    }
    let Some((sid, expires)) = payload.split_once('.') else {
        return Ok(None);
    };
    let Ok(expires) = expires.parse::<i64>() else {
        return Ok(None);
    };
    let now = unix_now();
    if expires <= now {
        return Ok(None);
    }
    let id_hash = sha256_hex(sid.as_bytes());
    match ctx.db.session(&id_hash)? {
        Some(row) if row.expires_at > now => {}
        _ => return Ok(None),
    }
    let refreshed = if SESSION_TTL_SECS - (expires - now) > REFRESH_AFTER_SECS {
        let new_expires = now + SESSION_TTL_SECS;
        ctx.db.extend_session(&id_hash, new_expires)?;
        Some(cookie_value(ctx, sid, new_expires))
    } else {
        None
    };
    Ok(Some(SessionCheck { id_hash, refreshed }))
}

/// Ends the session a cookie names (logout); unknown or forged cookies are ignored.
pub fn end_session(ctx: &AppContext, value: &str) -> Result<bool> {
    match check_session(ctx, value)? {
        Some(s) => {
            ctx.db.delete_session(&s.id_hash)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Creates an API token; returns its row and the value, which is never shown again.
pub fn create_token(ctx: &AppContext, name: &str) -> Result<(crate::db::ApiToken, String)> {
    let value = format!("bty_{}", random_hex(24)?);
    let row = ctx.db.create_token(name, &sha256_hex(value.as_bytes()))?;
    Ok((row, value))
}

/// Who is asking, if anyone: a Bearer token first, then the session cookie. Returns the
/// principal and a cookie to re-issue when the session slid forward.
pub fn authenticate(ctx: &AppContext, req: &Request<'_>) -> Result<Option<(Principal, Option<String>)>> {
    if let Some(auth) = req.header("authorization") {
        let token = auth.strip_prefix("Bearer ").or_else(|| auth.strip_prefix("bearer ")).map(str::trim);
        return Ok(match token {
            Some(t) if !t.is_empty() => {
                ctx.db.use_token(&sha256_hex(t.as_bytes()))?.map(|id| (Principal::Token { id }, None))
            }
            _ => None,
        });
    }
    let Some(cookie) = req.cookie(COOKIE) else {
        return Ok(None);
    };
    Ok(check_session(ctx, cookie)?.map(|s| (Principal::Session { id_hash: s.id_hash }, s.refreshed)))
}

/// Failed sign-ins one address gets before it backs off.
pub const ADDRESS_FREE_FAILURES: u32 = 5;

/// Failed sign-ins the admin account gets from all addresses together before it backs off, so
/// an attacker rotating addresses gets no unlimited tries either.
pub const ACCOUNT_FREE_FAILURES: u32 = 20;

/// An address's first backoff; each further failure doubles it, up to [`ADDRESS_BACKOFF_MAX`].
const ADDRESS_BACKOFF_FIRST: Duration = Duration::from_secs(5);

/// The longest an address waits: short, because the admin may share it (a NAT, a jump host)
/// with whoever is guessing, and must get a turn soon.
const ADDRESS_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The account's first backoff and its cap: shorter still, as every address shares it.
const ACCOUNT_BACKOFF_FIRST: Duration = Duration::from_secs(1);
const ACCOUNT_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Failures are forgotten after this long without another one.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// Failures of one address or of the account, and until when it waits.
#[derive(Clone, Copy)]
struct Backoff {
    failures: u32,
    last: Instant,
    until: Option<Instant>,
}

impl Backoff {
    fn new(now: Instant) -> Backoff {
        Backoff { failures: 0, last: now, until: None }
    }

    fn forget_if_old(&mut self, now: Instant) {
        if now.duration_since(self.last) >= FORGET_AFTER {
            *self = Backoff::new(now);
        }
    }

    fn wait(&self, now: Instant) -> Option<Duration> {
        self.until.filter(|u| *u > now).map(|u| u - now)
    }

    /// Counts a failure; past `free` ones, the next try waits `first`, doubled per failure, capped.
    fn fail(&mut self, now: Instant, free: u32, first: Duration, max: Duration) {
        self.failures = self.failures.saturating_add(1);
        self.last = now;
        if self.failures >= free {
            let doublings = (self.failures - free).min(16);
            self.until = Some(now + (first * (1u32 << doublings)).min(max));
        }
    }
}

struct Limits {
    addresses: HashMap<String, Backoff>,
    account: Backoff,
}

/// Sign-in backoff per address and for the account. A try is counted as a failure when it
/// starts, under the lock, so tries arriving together cannot all pass the check before the
/// first slow password comparison ends; a success clears the count.
pub struct LoginLimiter {
    limits: Mutex<Limits>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        let account = Backoff::new(Instant::now());
        LoginLimiter { limits: Mutex::new(Limits { addresses: HashMap::new(), account }) }
    }
}

impl LoginLimiter {
    /// Starts a sign-in try from `ip`: `Err(seconds to wait)` while the address or the account
    /// backs off, else the try is counted as failed until [`LoginLimiter::succeeded`].
    pub fn begin(&self, ip: &str) -> std::result::Result<(), u64> {
        let mut limits = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        // Forget old entries so a scan of many addresses cannot grow the map without bound.
        if limits.addresses.len() > 10_000 {
            limits.addresses.retain(|_, b| now.duration_since(b.last) < FORGET_AFTER);
        }
        let Limits { addresses, account } = &mut *limits;
        account.forget_if_old(now);
        let address = addresses.entry(ip.to_string()).or_insert_with(|| Backoff::new(now));
        address.forget_if_old(now);
        if let Some(wait) = address.wait(now).max(account.wait(now)) {
            return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        address.fail(now, ADDRESS_FREE_FAILURES, ADDRESS_BACKOFF_FIRST, ADDRESS_BACKOFF_MAX);
        account.fail(now, ACCOUNT_FREE_FAILURES, ACCOUNT_BACKOFF_FIRST, ACCOUNT_BACKOFF_MAX);
        Ok(())
    }

    /// Clears the address's and the account's failures after a successful sign-in.
    pub fn succeeded(&self, ip: &str) {
        let mut limits = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        limits.addresses.remove(ip);
        limits.account = Backoff::new(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex(&mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn pbkdf2_matches_the_rfc7914_test_vector_and_stored_hashes_verify() {
        // RFC 7914 §11: PBKDF2-HMAC-SHA256("passwd", "salt", c = 1), first 32 bytes.
        assert_eq!(
            hex(&pbkdf2_sha256(b"passwd", b"salt", 1)),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
        let stored = hash_password("new secret").unwrap();
        assert!(verify_password(&stored, "new secret"));
        assert!(!verify_password(&stored, "new secreT"));
        assert!(!verify_password("garbage", "x"));
    }

    #[test]
    fn ct_eq_compares_content_and_length() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }

    #[test]
    fn limiter_backs_off_per_address_and_per_account_and_resets_on_success() {
        let l = LoginLimiter::default();
        for _ in 0..ADDRESS_FREE_FAILURES {
            assert!(l.begin("1.2.3.4").is_ok());
        }
        let wait = l.begin("1.2.3.4").unwrap_err();
        assert!((1..=ADDRESS_BACKOFF_FIRST.as_secs()).contains(&wait), "{wait}");
        assert!(l.begin("5.6.7.8").is_ok());
        l.succeeded("1.2.3.4");
        assert!(l.begin("1.2.3.4").is_ok());
        // Many addresses, one try each: the account backs off.
        let l = LoginLimiter::default();
        for i in 0..ACCOUNT_FREE_FAILURES {
            assert!(l.begin(&format!("10.0.0.{i}")).is_ok());
        }
        assert!(l.begin("10.0.1.1").is_err());
    }
}
