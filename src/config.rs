//! `bty.toml` configuration with layering and `BTY_<SECTION>_<KEY>` environment overrides.
//!
//! Layers, lowest to highest: built-in defaults < `<dir>/bty.toml` < `<dir>/conf.d/*.toml`
//! (lexicographic, so drop-ins override the main file) < `--config PATH` < environment
//! `BTY_<SECTION>_<KEY>` < command-line flags. `<dir>` is `/etc/bty`, or `$BTY_CONFIG_DIR` when
//! set (tests point it at an empty directory so they never read the host's `/etc`). Unknown
//! sections and keys are an error naming the key and the file; every key remembers where its
//! value came from ([`Config::provenance`]) for the settings page. This module only reads; it
//! does not write TOML back and does not create directories.

use crate::error::{Context, Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where a setting's effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// A TOML file.
    File(PathBuf),
    /// An environment variable (its name).
    Env(String),
    /// A command-line flag (its name).
    Flag(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "toml({})", p.display()),
            Source::Env(n) => write!(f, "env({n})"),
            Source::Flag(n) => write!(f, "flag({n})"),
        }
    }
}

/// One row of the provenance list: `section.key = value  # source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// `[section]` name.
    pub section: &'static str,
    /// Key name.
    pub key: &'static str,
    /// The effective value as text; secrets are shown as `(set)` or `(unset)`.
    pub value: String,
    /// Where it came from.
    pub source: Source,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Secret,
    /// A string or a list of strings (upstream's `trusted_proxy` is a string).
    StrOrList,
    Int,
    Bool,
}

/// Every key bty understands, with its default as TOML text. Adding a key means one row here and
/// one field below.
const KEYS: &[(&str, &str, Kind, &str)] = &[
    ("admin", "password", Kind::Secret, "\"\""),
    ("backup", "interval_hours", Kind::Int, "24"),
    ("backup", "keep", Kind::Int, "7"),
    ("limits", "discovery_max", Kind::Int, "4096"),
    ("limits", "discovery_per_hour", Kind::Int, "256"),
    ("limits", "events_max_rows", Kind::Int, "200000"),
    ("limits", "low_space_warn_mib", Kind::Int, "1024"),
    ("limits", "lshw_max_bytes", Kind::Int, "4194304"),
    ("netboot", "initrd", Kind::Str, "\"bty-netboot-x86_64.initrd\""),
    ("netboot", "kernel", Kind::Str, "\"bty-netboot-x86_64.vmlinuz\""),
    ("paths", "backup_dir", Kind::Str, "\"\""),
    ("paths", "boot_dir", Kind::Str, "\"\""),
    ("paths", "images_dir", Kind::Str, "\"\""),
    ("paths", "state_dir", Kind::Str, "\"/var/lib/bty\""),
    ("server", "listen", Kind::Str, "\"0.0.0.0:8080\""),
    ("server", "session_secret", Kind::Secret, "\"\""),
    ("server", "trusted_proxy", Kind::StrOrList, "[]"),
    ("tftp", "enabled", Kind::Bool, "false"),
    ("tftp", "listen", Kind::Str, "\"0.0.0.0:69\""),
    ("tftp", "root", Kind::Str, "\"\""),
    ("tuning", "events_keep_days", Kind::Int, "365"),
    ("tuning", "events_keep_max", Kind::Int, "1000000"),
    ("tuning", "max_connections", Kind::Int, "16"),
    ("tuning", "max_upload_bytes", Kind::Int, "214748364800"),
    ("ui", "stall_seconds", Kind::Int, "120"),
    ("ui", "time_zone", Kind::Str, "\"UTC\""),
];

/// What to read, decided by the applet from its flags and environment.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The system directory (`/etc/bty` unless `$BTY_CONFIG_DIR`).
    pub system_dir: PathBuf,
    /// `--config PATH`.
    pub config_file: Option<PathBuf>,
    /// The environment to read `BTY_<SECTION>_<KEY>` from.
    pub env: Vec<(String, String)>,
    /// `--listen`.
    pub listen: Option<String>,
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
}

impl LoadOptions {
    /// Options from this process's environment: `$BTY_CONFIG_DIR` or `/etc/bty`.
    pub fn from_process_env() -> LoadOptions {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let system_dir = env
            .iter()
            .find(|(k, v)| k == "BTY_CONFIG_DIR" && !v.is_empty())
            .map(|(_, v)| PathBuf::from(v))
            .unwrap_or_else(|| PathBuf::from("/etc/bty"));
        LoadOptions { system_dir, env, ..LoadOptions::default() }
    }
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// `ADDR:PORT` to listen on.
    pub listen: String,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxy: TrustedProxy,
    /// Cookie-signing secret; empty means `<state_dir>/session-secret`.
    pub session_secret: String,
}

/// `[server] trusted_proxy`: whose `X-Forwarded-For` is believed. The header is read from the
/// right (`web::request`), so only entries added by trusted proxies count, never what the client
/// wrote on the left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TrustedProxy {
    /// The header is ignored (empty, `"0"`, `"false"`, `"no"`, `"off"`).
    #[default]
    Off,
    /// Upstream's boolean-like string form (`"1"`, `"true"`, `"yes"`, `"on"`): whichever peer
    /// connects is one proxy, so the entry it added (the rightmost) is the client.
    AnyPeer,
    /// These addresses and networks (`10.0.0.1`, `10.0.0.0/8`, `fd00::/8`) are proxies.
    Nets(Vec<(std::net::IpAddr, u8)>),
}

impl TrustedProxy {
    /// Parses the entries of the setting (a string split at commas, or a list); `Err` names
    /// the first entry that is neither an address, a network nor a yes/no word.
    pub fn parse(entries: &[String]) -> std::result::Result<TrustedProxy, String> {
        let entries: Vec<&str> = entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()).collect();
        match entries.as_slice() {
            [] => return Ok(TrustedProxy::Off),
            [one] => match one.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => return Ok(TrustedProxy::AnyPeer),
                "0" | "false" | "no" | "off" => return Ok(TrustedProxy::Off),
                _ => {}
            },
            _ => {}
        }
        let net = |e: &str| -> Option<(std::net::IpAddr, u8)> {
            let (addr, bits) = e.split_once('/').unwrap_or((e, ""));
            let ip: std::net::IpAddr = addr.parse().ok()?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = if bits.is_empty() { max } else { bits.parse().ok().filter(|b| *b <= max)? };
            Some((ip, bits))
        };
        entries
            .iter()
            .map(|e| net(e).ok_or_else(|| e.to_string()))
            .collect::<std::result::Result<_, _>>()
            .map(TrustedProxy::Nets)
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let within = |net: IpAddr, bits: u8| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        };
        match self {
            TrustedProxy::Off => false,
            TrustedProxy::AnyPeer => true,
            TrustedProxy::Nets(nets) => nets.iter().any(|&(n, b)| within(n, b)),
        }
    }
}

/// `[paths]`, resolved: empty values become directories under `state_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// Everything bty-web keeps (`state.db`, secrets).
    pub state_dir: PathBuf,
    /// Netboot artifacts served at `/boot/`.
    pub boot_dir: PathBuf,
    /// The image store served at `/images/`.
    pub images_dir: PathBuf,
    /// Database backups.
    pub backup_dir: PathBuf,
}

/// `[tuning]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuning {
    /// Largest accepted upload (boot artifacts, images).
    pub max_upload_bytes: u64,
    /// Requests served at once (the request worker count); more wait in the accept queue.
    pub max_connections: usize,
    /// Events older than this many days are pruned.
    pub events_keep_days: u64,
    /// At most this many events are kept (newest).
    pub events_keep_max: u64,
}

/// `[tftp]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tftp {
    /// Whether bty-web serves TFTP in-process (`web::tftp`).
    pub enabled: bool,
    /// Directory served; empty means the boot dir.
    pub root: String,
    /// `ADDR:PORT`.
    pub listen: String,
}

/// `[backup]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// Hours between scheduled backups; 0 disables the schedule.
    pub interval_hours: u64,
    /// Backups kept.
    pub keep: u64,
}

/// `[limits]`: what the unauthenticated PXE plane may store, and when the dashboard warns about
/// space. Read through `AppContext::limits()` at use time: the Settings page (`web::settings`)
/// may override the first three.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Free space under the state dir (MiB) below which the dashboard warns; 0 never warns.
    pub low_space_warn_mib: u64,
    /// Machines auto-discovered per rolling hour; further unknown MACs are served, not stored.
    pub discovery_per_hour: u64,
    /// Machines in total beyond which unknown MACs are served, not stored.
    pub discovery_max: u64,
    /// Largest `lshw` blob stored per inventory post; a larger one is dropped, the old kept.
    pub lshw_max_bytes: u64,
    /// Events kept at most (newest), enforced as rows are written, not only hourly.
    pub events_max_rows: u64,
}

/// `[netboot]`: the artifact names the iPXE scripts chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netboot {
    /// Kernel file name in the boot dir.
    pub kernel: String,
    /// Initrd file name in the boot dir.
    pub initrd: String,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[server]`.
    pub server: Server,
    /// `[paths]`.
    pub paths: Paths,
    /// `[admin] password`; empty means generated at first start.
    pub admin_password: String,
    /// `[tuning]`.
    pub tuning: Tuning,
    /// `[tftp]`.
    pub tftp: Tftp,
    /// `[backup]`.
    pub backup: Backup,
    /// `[netboot]`.
    pub netboot: Netboot,
    /// `[limits]`.
    pub limits: Limits,
    provenance: Vec<Setting>,
}

type Layered = BTreeMap<(&'static str, &'static str), (toml::Value, Source)>;

impl Config {
    /// Reads every layer and builds the effective configuration.
    pub fn load(opts: &LoadOptions) -> Result<Config> {
        let mut values: Layered = BTreeMap::new();
        for &(section, key, _, default) in KEYS {
            let v: toml::Value = toml::from_str::<toml::Table>(&format!("v = {default}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .ok_or_else(|| Error::failed(format!("built-in default of {section}.{key} is not TOML")))?;
            values.insert((section, key), (v, Source::Default));
        }
        for file in layer_files(opts)? {
            apply_file(&mut values, &file)?;
        }
        apply_env(&mut values, &opts.env)?;
        if let Some(listen) = &opts.listen {
            set_str(&mut values, ("server", "listen"), listen, Source::Flag("--listen".into()));
        }
        if let Some(dir) = &opts.state_dir {
            let text = dir.to_string_lossy();
            set_str(&mut values, ("paths", "state_dir"), &text, Source::Flag("--state-dir".into()));
        }
        Config::from_layers(values)
    }

    fn from_layers(values: Layered) -> Result<Config> {
        let s =
            |k: (&str, &str)| values.get(&k).and_then(|(v, _)| v.as_str()).unwrap_or_default().to_string();
        let n = |k: (&str, &str)| {
            values.get(&k).and_then(|(v, _)| v.as_integer()).unwrap_or_default().max(0) as u64
        };
        let state_dir = PathBuf::from(s(("paths", "state_dir")));
        if state_dir.as_os_str().is_empty() {
            return Err(Error::invalid("paths.state_dir must not be empty"));
        }
        let under_state = |key: &str, default: &str| {
            let v = s(("paths", key));
            if v.is_empty() {
                state_dir.join(default)
            } else {
                PathBuf::from(v)
            }
        };
        let paths = Paths {
            boot_dir: under_state("boot_dir", "boot"),
            images_dir: under_state("images_dir", "images"),
            backup_dir: under_state("backup_dir", "backups"),
            state_dir: state_dir.clone(),
        };
        let trusted_proxy = match values.get(&("server", "trusted_proxy")) {
            Some((toml::Value::String(s), _)) => s.split(',').map(str::to_string).collect(),
            Some((toml::Value::Array(a), _)) => {
                a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()
            }
            _ => Vec::new(),
        };
        let trusted_proxy = TrustedProxy::parse(&trusted_proxy).map_err(|bad| {
            Error::invalid(format!(
                "server.trusted_proxy: {bad:?} is not an IP address or network; give the proxy's \
                 address or network (\"127.0.0.1\", \"10.0.0.0/8\"), or \"1\" to trust whichever peer connects"
            ))
        })?;
        let zone = s(("ui", "time_zone"));
        if jiff::tz::TimeZone::get(&zone).is_err() {
            return Err(Error::invalid(format!(
                "ui.time_zone: {zone:?} is not a time zone; give an IANA name such as \"Europe/Berlin\" or \"UTC\" \
                 (zones come from /usr/share/zoneinfo: install tzdata if it is missing)"
            )));
        }
        let max_upload = n(("tuning", "max_upload_bytes"));
        let provenance = KEYS
            .iter()
            .filter_map(|&(section, key, kind, _)| {
                let (v, source) = values.get(&(section, key))?;
                Some(Setting { section, key, value: display(v, kind), source: source.clone() })
            })
            .collect();
        Ok(Config {
            server: Server {
                listen: s(("server", "listen")),
                trusted_proxy,
                session_secret: s(("server", "session_secret")),
            },
            paths,
            admin_password: s(("admin", "password")).trim().to_string(),
            tuning: Tuning {
                // A non-positive cap means the default, as the reference does.
                max_upload_bytes: if max_upload == 0 { 200 << 30 } else { max_upload },
                max_connections: n(("tuning", "max_connections")).max(1) as usize,
                events_keep_days: n(("tuning", "events_keep_days")),
                events_keep_max: n(("tuning", "events_keep_max")),
            },
            tftp: Tftp {
                enabled: values.get(&("tftp", "enabled")).and_then(|(v, _)| v.as_bool()).unwrap_or(false),
                root: s(("tftp", "root")),
                listen: s(("tftp", "listen")),
            },
            backup: Backup { interval_hours: n(("backup", "interval_hours")), keep: n(("backup", "keep")) },
            netboot: Netboot { kernel: s(("netboot", "kernel")), initrd: s(("netboot", "initrd")) },
            limits: Limits {
                low_space_warn_mib: n(("limits", "low_space_warn_mib")),
                discovery_per_hour: n(("limits", "discovery_per_hour")),
                discovery_max: n(("limits", "discovery_max")),
                lshw_max_bytes: n(("limits", "lshw_max_bytes")),
                events_max_rows: n(("limits", "events_max_rows")),
            },
            provenance,
        })
    }

    /// Every key with its effective value and where it came from, sorted by section and key.
    pub fn provenance(&self) -> &[Setting] {
        &self.provenance
    }
}

fn display(v: &toml::Value, kind: Kind) -> String {
    match (kind, v) {
        (Kind::Secret, toml::Value::String(s)) if s.trim().is_empty() => "(unset)".to_string(),
        (Kind::Secret, _) => "(set)".to_string(),
        (_, toml::Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    }
}

fn set_str(values: &mut Layered, key: (&'static str, &'static str), text: &str, source: Source) {
    values.insert(key, (toml::Value::String(text.to_string()), source));
}

/// The files to read, lowest priority first; missing ones are skipped.
fn layer_files(opts: &LoadOptions) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let main = opts.system_dir.join("bty.toml");
    if main.is_file() {
        files.push(main);
    }
    let drop_ins = opts.system_dir.join("conf.d");
    if drop_ins.is_dir() {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&drop_ins)
            .with_context(|| format!("listing {}", drop_ins.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
            .collect();
        found.sort();
        files.extend(found);
    }
    if let Some(path) = &opts.config_file {
        if !path.is_file() {
            return Err(Error::invalid(format!("--config {}: no such file", path.display())));
        }
        files.push(path.clone());
    }
    Ok(files)
}

fn lookup(section: &str, key: &str) -> Option<(&'static str, &'static str, Kind)> {
    KEYS.iter().find(|(s, k, _, _)| *s == section && *k == key).map(|&(s, k, kind, _)| (s, k, kind))
}

fn apply_file(values: &mut Layered, path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| Error::invalid(format!("{}: invalid TOML: {}", path.display(), e.message())))?;
    for (section, body) in table {
        let toml::Value::Table(body) = body else {
            return Err(Error::invalid(format!(
                "{}: unknown key {section:?} (expected a [section])",
                path.display()
            )));
        };
        for (key, value) in body {
            let Some((s, k, kind)) = lookup(&section, &key) else {
                return Err(Error::invalid(format!("{}: unknown key {section}.{key}", path.display())));
            };
            check_type(&value, kind).map_err(|want| {
                Error::invalid(format!("{}: {section}.{key} must be {want}", path.display()))
            })?;
            values.insert((s, k), (value, Source::File(path.to_path_buf())));
        }
    }
    Ok(())
}

fn check_type(v: &toml::Value, kind: Kind) -> std::result::Result<(), &'static str> {
    let ok = match kind {
        Kind::Str | Kind::Secret => v.is_str(),
        Kind::StrOrList => v.is_str() || v.as_array().is_some_and(|a| a.iter().all(toml::Value::is_str)),
        Kind::Int => v.is_integer(),
        Kind::Bool => v.is_bool(),
    };
    if ok {
        return Ok(());
    }
    Err(match kind {
        Kind::Str | Kind::Secret => "a string",
        Kind::StrOrList => "a string or a list of strings",
        Kind::Int => "an integer",
        Kind::Bool => "true or false",
    })
}

fn apply_env(values: &mut Layered, env: &[(String, String)]) -> Result<()> {
    for &(section, key, kind, _) in KEYS {
        let name = format!("BTY_{}_{}", section.to_ascii_uppercase(), key.to_ascii_uppercase());
        let Some((_, raw)) = env.iter().find(|(k, v)| *k == name && !v.is_empty()) else {
            continue;
        };
        let value = match kind {
            Kind::Str | Kind::Secret | Kind::StrOrList => toml::Value::String(raw.clone()),
            Kind::Int => toml::Value::Integer(
                raw.trim()
                    .parse()
                    .map_err(|_| Error::invalid(format!("{name}={raw:?} is not an integer")))?,
            ),
            Kind::Bool => toml::Value::Boolean(match raw.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => return Err(Error::invalid(format!("{name}={raw:?} is not true or false"))),
            }),
        };
        values.insert((section, key), (value, Source::Env(name)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &Path) -> LoadOptions {
        LoadOptions { system_dir: dir.to_path_buf(), ..LoadOptions::default() }
    }

    #[test]
    fn defaults_put_every_dir_under_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::load(&opts(dir.path())).unwrap();
        assert_eq!(c.server.listen, "0.0.0.0:8080");
        assert_eq!(c.paths.state_dir, Path::new("/var/lib/bty"));
        assert_eq!(c.paths.boot_dir, Path::new("/var/lib/bty/boot"));
        assert_eq!(c.paths.images_dir, Path::new("/var/lib/bty/images"));
        assert!(c.provenance().iter().all(|s| s.source == Source::Default));
    }

    #[test]
    fn the_appliance_config_in_rootfs_overlay_loads_and_enables_tftp() {
        let dir = tempfile::tempdir().unwrap();
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs-overlay/etc/bty/bty.toml");
        let mut o = opts(dir.path());
        o.config_file = Some(shipped);
        let c = Config::load(&o).unwrap();
        assert!(c.tftp.enabled);
        assert_eq!(c.server.listen, "0.0.0.0:8080");
    }

    #[test]
    fn layers_apply_in_order_and_record_provenance() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("bty.toml"),
            "[server]\nlisten = \"1.1.1.1:1\"\n[tuning]\nmax_connections = 5\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("conf.d")).unwrap();
        let drop_in = dir.path().join("conf.d/10-x.toml");
        std::fs::write(&drop_in, "[server]\nlisten = \"2.2.2.2:2\"\ntrusted_proxy = [\"10.0.0.1\"]\n")
            .unwrap();
        let explicit = dir.path().join("explicit.toml");
        std::fs::write(&explicit, "[paths]\nstate_dir = \"/srv/bty\"\n").unwrap();
        let mut o = opts(dir.path());
        o.config_file = Some(explicit.clone());
        o.env = vec![
            ("BTY_TUNING_MAX_CONNECTIONS".into(), "9".into()),
            ("BTY_ADMIN_PASSWORD".into(), "pw".into()),
        ];
        let c = Config::load(&o).unwrap();
        assert_eq!(c.server.listen, "2.2.2.2:2");
        assert_eq!(c.server.trusted_proxy, TrustedProxy::Nets(vec![("10.0.0.1".parse().unwrap(), 32)]));
        assert_eq!(c.paths.boot_dir, Path::new("/srv/bty/boot"));
        assert_eq!(c.tuning.max_connections, 9);
        assert_eq!(c.admin_password, "pw");
        let src = |k: &str| c.provenance().iter().find(|s| s.key == k).unwrap().clone();
        assert_eq!(src("listen").source, Source::File(drop_in));
        assert_eq!(src("state_dir").source, Source::File(explicit));
        assert_eq!(src("max_connections").source, Source::Env("BTY_TUNING_MAX_CONNECTIONS".into()));
        assert_eq!(src("password").value, "(set)");
    }

    #[test]
    fn flags_beat_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(dir.path());
        o.env = vec![("BTY_SERVER_LISTEN".into(), "3.3.3.3:3".into())];
        o.listen = Some("127.0.0.1:0".into());
        o.state_dir = Some(PathBuf::from("./state"));
        let c = Config::load(&o).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:0");
        assert_eq!(c.paths.state_dir, Path::new("./state"));
    }

    #[test]
    fn unknown_keys_are_errors_naming_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bty.toml");
        std::fs::write(&path, "[server]\nport = 8080\n").unwrap();
        let e = Config::load(&opts(dir.path())).unwrap_err().to_string();
        assert!(e.contains("server.port") && e.contains(&path.display().to_string()), "{e}");
        std::fs::write(&path, "[withcache]\nurl = \"x\"\n").unwrap();
        let e = Config::load(&opts(dir.path())).unwrap_err().to_string();
        assert!(e.contains("withcache.url"), "{e}");
    }

    #[test]
    fn wrong_types_and_bad_env_integers_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bty.toml"), "[tuning]\nmax_upload_bytes = \"big\"\n").unwrap();
        assert!(Config::load(&opts(dir.path())).is_err());
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(dir.path());
        o.env = vec![("BTY_TUNING_MAX_UPLOAD_BYTES".into(), "lots".into())];
        assert!(Config::load(&o).unwrap_err().to_string().contains("BTY_TUNING_MAX_UPLOAD_BYTES"));
    }

    #[test]
    fn a_display_time_zone_that_is_not_a_zone_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bty.toml"), "[ui]\ntime_zone = \"Europe/Berln\"\n").unwrap();
        let e = Config::load(&opts(dir.path())).unwrap_err().to_string();
        assert!(e.contains("ui.time_zone: \"Europe/Berln\" is not a time zone"), "{e}");
        std::fs::write(dir.path().join("bty.toml"), "[ui]\ntime_zone = \"Europe/Berlin\"\n").unwrap();
        assert!(Config::load(&opts(dir.path())).is_ok());
    }
}
