//! `oras://host/owner/repo:tag` and `oras://host/owner/repo@sha256:…`: a disk image stored as
//! a layer of an OCI artifact, resolved through the distribution API (reference §2.7).
//!
//! Resolution: authorize (see `registry_auth`), fetch the manifest, pick the disk-image layer
//! (signatures, SBOMs, attestations and `.sha256`-style sidecars are skipped; the largest
//! remaining layer wins), then stream the blob as an [`HttpSource`] whose expected sha256 is
//! the layer digest, so the engine refuses bytes the registry did not vouch for. A `@sha256:`
//! ref names a manifest when the registry knows it as one, else a blob (as the reference
//! does). Image indexes are refused with the fix in the message. This module pushes nothing.

use super::client;
use super::http::{HttpOptions, HttpSource};
use super::registry_auth::Registry;
use crate::error::{Context, Error, ErrorKind, Result};
use serde_json::Value;

/// Largest manifest read.
const MANIFEST_CAP: u64 = 10 << 20;

/// Manifest media types asked for; the index types are included so that an index gets a
/// clear error instead of a registry's "manifest unknown".
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json,\
application/vnd.docker.distribution.manifest.v2+json,\
application/vnd.oci.image.index.v1+json,\
application/vnd.docker.distribution.manifest.list.v2+json";

/// Layer media types that are never a disk image (reference §2.7).
const NOT_DISK_MEDIA_TYPES: &[&str] = &[
    "application/vnd.cncf.helm.chart.v1.tar+gzip",
    "application/vnd.cncf.helm.chart.provenance.v1.prov",
    "application/vnd.dev.cosign.simplesigning.v1+json",
    "application/vnd.dev.cosign.artifact.sig.v1+json",
    "application/vnd.in-toto+json",
    "application/vnd.dev.cosign.artifact.bundle.v1+json",
    "application/vnd.dsse.envelope.v1+json",
    "application/spdx+json",
    "application/vnd.cyclonedx+json",
    "application/vnd.oci.empty.v1+json",
];

/// Title suffixes of sidecar files, skipped unless nothing else is left.
const SIDECAR_SUFFIXES: &[&str] =
    &[".sha256", ".sha512", ".sig", ".asc", ".pem", ".cert", ".sbom", ".att", ".json"];

/// The annotation holding a layer's file name.
const TITLE: &str = "org.opencontainers.image.title";

/// What an `oras://` ref points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A tag such as `latest` or `v1.2`.
    Tag(String),
    /// `sha256:` plus 64 lower-case hex digits.
    Digest(String),
}

/// A parsed `oras://` ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrasRef {
    /// `host[:port]`.
    pub host: String,
    /// `owner/repo` (at least one `/`).
    pub repo: String,
    /// The tag or digest.
    pub target: Target,
}

impl OrasRef {
    /// Parses `oras://host/owner/repo:tag` or `…@sha256:<64 hex>` with the reference's grammar.
    pub fn parse(spec: &str) -> Result<OrasRef> {
        let bad = |why: &str| {
            Error::invalid(format!(
                "{spec:?} is not a valid oras ref ({why}); expected oras://HOST[:PORT]/OWNER/REPO:TAG \
                 or oras://HOST[:PORT]/OWNER/REPO@sha256:<64 hex>"
            ))
        };
        let body = strip_scheme(spec).ok_or_else(|| bad("it does not start with oras://"))?;
        let (host, rest) = body.split_once('/').ok_or_else(|| bad("no repository"))?;
        if !valid_host(host) {
            return Err(bad("bad host"));
        }
        let cut = rest.find([':', '@']).ok_or_else(|| bad("no :TAG or @sha256:DIGEST"))?;
        let (repo, target) = rest.split_at(cut);
        let repo_ok = repo.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && repo.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"/_.-".contains(&b));
        if !repo_ok {
            return Err(bad("the repository must be lower-case letters, digits and / _ . -"));
        }
        if !repo.contains('/') {
            return Err(bad("the repository needs an owner: OWNER/REPO"));
        }
        let target = if let Some(d) = target.strip_prefix('@') {
            let hex = d.strip_prefix("sha256:").ok_or_else(|| bad("only sha256 digests are supported"))?;
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                return Err(bad("a digest is sha256: and 64 lower-case hex digits"));
            }
            Target::Digest(d.to_string())
        } else {
            let tag = &target[1..];
            if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
                return Err(bad("a tag is letters, digits and . _ -"));
            }
            Target::Tag(tag.to_string())
        };
        Ok(OrasRef { host: host.to_string(), repo: repo.to_string(), target })
    }

    /// The ref written back: `oras://host/repo:tag` or `oras://host/repo@sha256:…`.
    pub fn to_spec(&self) -> String {
        match &self.target {
            Target::Tag(t) => format!("oras://{}/{}:{t}", self.host, self.repo),
            Target::Digest(d) => format!("oras://{}/{}@{d}", self.host, self.repo),
        }
    }
}

/// The part after a case-insensitive `oras://`.
fn strip_scheme(spec: &str) -> Option<&str> {
    let head = spec.get(..7)?;
    head.eq_ignore_ascii_case("oras://").then(|| &spec[7..])
}

/// `[a-zA-Z0-9][a-zA-Z0-9.-]*(:[0-9]+)?`
fn valid_host(host: &str) -> bool {
    let (name, port) = match host.split_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    let name_ok = name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    name_ok && port_ok
}

/// The layer chosen as the disk image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// `sha256:…`.
    pub digest: String,
    /// Size from the manifest, when given.
    pub size: Option<u64>,
    /// The `org.opencontainers.image.title` annotation, when given.
    pub title: Option<String>,
}

/// Resolves `spec` and opens the picked layer as a source that expects the layer digest.
pub fn open(spec: &str) -> Result<HttpSource> {
    let r = OrasRef::parse(spec)?;
    let registry = Registry::new(&r.host);
    let ctx = || format!("resolving {spec}");
    let authorization = registry.authorize(&r.repo).with_context(ctx)?;
    let layer = resolve_layer(&registry, &r, authorization.as_deref()).with_context(ctx)?;
    let expected = super::parse_sha256(&layer.digest)?;
    let url = format!("{}/v2/{}/blobs/{}", registry.base, r.repo, layer.digest);
    let repo_name = r.repo.rsplit('/').next().unwrap_or(&r.repo).to_string();
    // A token from BTY_ORAS_TOKEN cannot be refreshed; one from the token dance can.
    let reauth: Option<super::http::Reauth> = match std::env::var_os("BTY_ORAS_TOKEN") {
        Some(_) => None,
        None => {
            let (registry, repo) = (registry.clone(), r.repo.clone());
            Some(Box::new(move || {
                registry
                    .authorize(&repo)?
                    .ok_or_else(|| Error::new(ErrorKind::Unauthorized, "the registry refused the blob"))
            }))
        }
    };
    let opts = HttpOptions {
        authorization,
        reauth,
        expected_sha256: Some(expected),
        file_name: Some(layer.title.unwrap_or(repo_name)),
        shown: Some(spec.to_string()),
    };
    let source = HttpSource::with_options(&url, opts).with_context(ctx)?;
    if let (Some(want), Some(got)) = (layer.size, super::Source::len(&source)) {
        if want != got {
            return Err(Error::new(
                ErrorKind::Integrity,
                format!("{spec}: the manifest says the layer has {want} bytes but the registry serves {got}"),
            ));
        }
    }
    Ok(source)
}

/// Finds the disk-image layer for a ref: from the manifest for tags (and for digests the
/// registry knows as manifests), else the digest itself names the blob.
fn resolve_layer(registry: &Registry, r: &OrasRef, auth: Option<&str>) -> Result<Layer> {
    let reference = match &r.target {
        Target::Tag(t) => t.clone(),
        Target::Digest(d) => d.clone(),
    };
    let url = format!("{}/v2/{}/manifests/{reference}", registry.base, r.repo);
    let send = || {
        let mut req = client::agent().get(&url).header("Accept", ACCEPT);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        req.call()
    };
    let resp = match &r.target {
        Target::Tag(_) => client::send_with_retries(&url, send)?,
        // One try: registries answer a blob digest asked for as a manifest with 404 or even
        // 500 (distribution 2.8), and either way the digest then names a blob.
        Target::Digest(d) => match send() {
            Ok(resp) if resp.status().as_u16() == 200 => resp,
            Ok(resp) if matches!(resp.status().as_u16(), 401 | 403) => resp,
            _ => return Ok(Layer { digest: d.clone(), size: None, title: None }),
        },
    };
    let status = resp.status().as_u16();
    match status {
        200 => {}
        404 => {
            return Err(Error::not_found(format!("the registry has no tag {reference:?} in {}", r.repo)));
        }
        401 | 403 => {
            return Err(Error::new(
                ErrorKind::Unauthorized,
                format!("the registry refused access to {} (HTTP {status}); check BTY_ORAS_TOKEN or the docker config", r.repo),
            ))
        }
        _ => return Err(client::status_error(&url, status)),
    }
    let body = client::read_capped(resp, MANIFEST_CAP, &url)?;
    if let Target::Digest(d) = &r.target {
        // The registry must hand back exactly the manifest the digest names.
        let got = super::hex(&sha2_digest(&body));
        if d.strip_prefix("sha256:") != Some(got.as_str()) {
            return Err(Error::new(
                ErrorKind::Integrity,
                format!("the manifest served for {d} has digest sha256:{got}"),
            ));
        }
    }
    let manifest: Value =
        serde_json::from_slice(&body).map_err(|e| Error::failed(format!("the manifest is not JSON: {e}")))?;
    pick_layer(&manifest)
}

fn sha2_digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).into()
}

/// Picks the disk image among a manifest's layers (reference §2.7 step 4).
pub fn pick_layer(manifest: &Value) -> Result<Layer> {
    let layers = manifest.get("layers").and_then(Value::as_array).filter(|l| !l.is_empty());
    let Some(layers) = layers else {
        if manifest.get("manifests").is_some() {
            return Err(Error::invalid(
                "this ref names a multi-arch image index, not an artifact with a disk image; reference a \
                 concrete platform manifest by its @sha256:<digest> (see `oras manifest fetch` of the index)",
            ));
        }
        return Err(Error::invalid("the manifest has no layers, so it holds no disk image"));
    };
    let candidates: Vec<Layer> = layers
        .iter()
        .filter(|l| {
            let media = l.get("mediaType").and_then(Value::as_str).unwrap_or("");
            !NOT_DISK_MEDIA_TYPES.contains(&media)
        })
        .map(|l| Layer {
            digest: l.get("digest").and_then(Value::as_str).unwrap_or("").to_string(),
            size: l.get("size").and_then(Value::as_u64),
            title: l
                .get("annotations")
                .and_then(|a| a.get(TITLE))
                .and_then(Value::as_str)
                .map(str::to_string),
        })
        .collect();
    if candidates.is_empty() {
        return Err(Error::invalid(
            "non-disk-image artifact: every layer is a signature, SBOM, attestation or empty config",
        ));
    }
    let is_sidecar = |l: &Layer| {
        l.title
            .as_deref()
            .is_some_and(|t| SIDECAR_SUFFIXES.iter().any(|s| t.to_ascii_lowercase().ends_with(s)))
    };
    let preferred: Vec<&Layer> = candidates.iter().filter(|l| !is_sidecar(l)).collect();
    let pool: Vec<&Layer> = if preferred.is_empty() { candidates.iter().collect() } else { preferred };
    let best = pool
        .into_iter()
        .max_by_key(|l| l.size.unwrap_or(0))
        .cloned()
        .unwrap_or_else(|| candidates[0].clone());
    if !best.digest.starts_with("sha256:") {
        return Err(Error::invalid(format!(
            "the picked layer's digest {:?} is not a sha256 digest",
            best.digest
        )));
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn refs_parse_by_tag_and_by_digest() {
        let r = OrasRef::parse("oras://ghcr.io/owner/repo:v1.2").unwrap();
        assert_eq!((r.host.as_str(), r.repo.as_str()), ("ghcr.io", "owner/repo"));
        assert_eq!(r.target, Target::Tag("v1.2".into()));
        let r = OrasRef::parse(&format!("oras://localhost:5000/a/b/c@{D}")).unwrap();
        assert_eq!(r.target, Target::Digest(D.into()));
        assert_eq!(r.to_spec(), format!("oras://localhost:5000/a/b/c@{D}"));
    }

    #[test]
    fn bad_grammar_is_invalid_with_the_expected_shape() {
        for bad in [
            "oras://ghcr.io/repo:tag",
            "oras://ghcr.io/Owner/repo:tag",
            "oras://ghcr.io/owner/repo",
            "oras://ghcr.io/owner/repo:",
            "oras://ghcr.io/owner/repo@sha256:abc",
            "oras://-host/owner/repo:t",
            "oras://host:x/owner/repo:t",
            "http://ghcr.io/owner/repo:t",
        ] {
            let e = OrasRef::parse(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Invalid, "{bad}");
            assert!(e.to_string().contains("expected oras://HOST"), "{bad}: {e}");
        }
    }

    fn layer(media: &str, size: u64, title: Option<&str>, n: u8) -> Value {
        let mut l = json!({"mediaType": media, "size": size, "digest": format!("sha256:{}", format!("{n:02x}").repeat(32))});
        if let Some(t) = title {
            l["annotations"] = json!({TITLE: t});
        }
        l
    }

    #[test]
    fn the_largest_non_sidecar_layer_wins() {
        let m = json!({"layers": [
            layer("application/octet-stream", 10, Some("disk.img.zst"), 1),
            layer("application/octet-stream", 99, Some("disk.img.zst.sha256"), 2),
            layer("application/vnd.dev.cosign.simplesigning.v1+json", 500, None, 3),
            layer("application/octet-stream", 20, Some("other.img"), 4),
        ]});
        let picked = pick_layer(&m).unwrap();
        assert_eq!(picked.title.as_deref(), Some("other.img"));
    }

    #[test]
    fn only_sidecars_left_still_picks_the_largest() {
        let m = json!({"layers": [layer("x", 1, Some("a.sig"), 1), layer("x", 2, Some("b.json"), 2)]});
        assert_eq!(pick_layer(&m).unwrap().title.as_deref(), Some("b.json"));
    }

    #[test]
    fn an_index_and_signature_only_artifacts_are_refused_clearly() {
        let e = pick_layer(&json!({"manifests": []})).unwrap_err();
        assert!(e.to_string().contains("@sha256:<digest>"), "{e}");
        let e = pick_layer(&json!({"layers": [layer("application/spdx+json", 5, None, 1)]})).unwrap_err();
        assert!(e.to_string().contains("non-disk-image artifact"), "{e}");
    }
}
