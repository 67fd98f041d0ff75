//! The client side of `GET /healthz`, for `bty-web health`: the container image's HEALTHCHECK
//! runs it, because that image holds no shell and no HTTP client besides this binary.

use crate::error::{Error, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// A health check that takes longer than this counts as failed (the server is wedged).
const TIMEOUT: Duration = Duration::from_secs(5);

/// The `/healthz` URL of a server listening on `listen` (`[server] listen`): a wildcard address
/// is asked on the loopback address of the same family.
pub fn healthz_url(listen: &str) -> Result<String> {
    let addr: SocketAddr = listen.parse().map_err(|_| {
        Error::invalid(format!("listen address {listen:?} is not IP:PORT; pass the URL to check instead"))
    })?;
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(format!("http://{}/healthz", SocketAddr::new(ip, addr.port())))
}

/// GETs `url` and succeeds only on HTTP 200.
pub fn check(url: &str) -> Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT))
        .build()
        .into();
    let resp = agent.get(url).call().map_err(|e| Error::failed(format!("GET {url}: {e}")))?;
    match resp.status().as_u16() {
        200 => Ok(()),
        status => Err(Error::failed(format!("GET {url} answered {status}, not 200"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_addresses_are_checked_on_loopback() {
        assert_eq!(healthz_url("0.0.0.0:8080").unwrap(), "http://127.0.0.1:8080/healthz");
        assert_eq!(healthz_url("[::]:80").unwrap(), "http://[::1]:80/healthz");
        assert_eq!(healthz_url("10.1.2.3:8080").unwrap(), "http://10.1.2.3:8080/healthz");
    }

    #[test]
    fn a_listen_value_that_is_no_socket_address_is_an_error_naming_it() {
        let err = healthz_url("bty.example:8080").unwrap_err().to_string();
        assert!(err.contains("bty.example:8080"), "{err}");
    }
}
