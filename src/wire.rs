//! Every serde type that crosses a process boundary: the agent ⇄ bty-web JSON, the machine API
//! and the events API. This is the compatibility surface with the Python bty (reference §4.3,
//! §4.4): the same field names, enum values and constraints.
//!
//! Rules kept here: a newer peer's extra fields are ignored unless the reference forbids unknown
//! fields on that message (`MachineUpsert`, `InventoryPost`, `PxeStatus`); a missing optional
//! field takes its default; our own additions are optional fields an old peer can ignore.
//! Validation of the constraints the reference states (patterns, lengths, counts) lives in the
//! `validate` methods below so every entry point applies it the same way. This module does no
//! I/O and knows nothing of HTTP or SQL.

use serde::{Deserialize, Serialize};

/// A machine's boot mode: the operator's intent, never mutated by the server (reference §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootMode {
    /// Boot the local disk (`exit` on UEFI, `sanboot` on BIOS).
    IpxeExit,
    /// Flash, boot the disk once, flash again on the next contact, and so on.
    BtyFlashAlways,
    /// Flash once, then boot the disk on every later contact.
    BtyFlashOnce,
    /// Boot the netboot environment into the interactive wizard.
    BtyTui,
    /// Boot the netboot environment to post an inventory, then boot the disk.
    BtyInventory,
}

impl BootMode {
    /// Every mode we offer, in the order the reference lists them (`ramboot` is not offered).
    pub const ALL: [BootMode; 5] = [
        BootMode::IpxeExit,
        BootMode::BtyFlashAlways,
        BootMode::BtyFlashOnce,
        BootMode::BtyTui,
        BootMode::BtyInventory,
    ];

    /// The wire name (`bty-flash-once`).
    pub fn as_str(self) -> &'static str {
        match self {
            BootMode::IpxeExit => "ipxe-exit",
            BootMode::BtyFlashAlways => "bty-flash-always",
            BootMode::BtyFlashOnce => "bty-flash-once",
            BootMode::BtyTui => "bty-tui",
            BootMode::BtyInventory => "bty-inventory",
        }
    }

    /// Parses a wire name; `None` for anything else (including `ramboot`).
    pub fn parse(s: &str) -> Option<BootMode> {
        BootMode::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Whether this mode writes the disk from the netboot environment.
    pub fn flashes(self) -> bool {
        matches!(self, BootMode::BtyFlashAlways | BootMode::BtyFlashOnce)
    }
}

/// A machine as the API returns it (reference §4.3, field order as emitted), plus our extras.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Canonical MAC, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// The image this machine is bound to (64 hex), or null when unassigned.
    pub bty_image_ref: Option<String>,
    /// Labels, alphabetical.
    #[serde(default)]
    pub labels: Vec<String>,
    /// First PXE contact; null when the row was created by PUT.
    #[serde(default)]
    pub discovered_at: Option<String>,
    /// Last PXE or netboot-environment contact.
    #[serde(default)]
    pub last_seen_at: Option<String>,
    /// Address of the last contact.
    #[serde(default)]
    pub last_seen_ip: Option<String>,
    /// The operator's boot mode.
    pub boot_mode: BootMode,
    /// BIOS drive for `sanboot`; null means `0x80`.
    #[serde(default)]
    pub sanboot_drive: Option<String>,
    /// Time of the last `status done`.
    #[serde(default)]
    pub last_flashed_at: Option<String>,
    /// The last inventory's disks (sorted-key JSON objects).
    #[serde(default)]
    pub known_disks: Option<Vec<serde_json::Value>>,
    /// Time of the last inventory.
    #[serde(default)]
    pub known_disks_at: Option<String>,
    /// Serial of the disk a flash writes; never guessed.
    #[serde(default)]
    pub target_disk_serial: Option<String>,
    /// Row creation time.
    pub created_at: String,
    /// Last change to the row.
    pub updated_at: String,
    /// Ours: `done` or `failed`, the outcome of the last reported flash.
    #[serde(default)]
    pub last_flash_status: Option<String>,
    /// Ours: seconds from the flasher's boot to its `done`.
    #[serde(default)]
    pub last_flash_seconds: Option<f64>,
    /// Ours: bytes the last flash reported written.
    #[serde(default)]
    pub last_flash_bytes: Option<u64>,
    /// Ours: content sha256 of the image the last successful flash wrote, when known.
    #[serde(default)]
    pub last_flashed_image_sha256: Option<String>,
    /// Ours: the reason the agent gave for the last failed flash.
    #[serde(default)]
    pub last_flash_reason: Option<String>,
    /// Ours: the progress phase the last failed flash was in (`write`, `verify`, …), when known.
    #[serde(default)]
    pub last_flash_phase: Option<String>,
    /// Ours: what the last flash fetched and wrote, as its agent reported it (absent from an
    /// agent that does not report figures).
    #[serde(default)]
    pub last_flash_figures: Option<FlashFigures>,
    /// Ours: whether a flash of this machine goes by delta (the plan's `delta`): the agent
    /// compares the disk with the image's chunk index and fetches only the chunks that differ.
    #[serde(default = "yes")]
    pub delta: bool,
    /// Ours: the lifecycle label of reference §4.7 (`pending flash`, …); empty for other modes.
    #[serde(default)]
    pub boot_state: String,
}

/// The body of `PUT /machines/{mac}`: a full replace; omitted fields take their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineUpsert {
    /// 64 lower-case hex, or null.
    #[serde(default)]
    pub bty_image_ref: Option<String>,
    /// At most 16, each 1–64 chars of `[A-Za-z0-9][A-Za-z0-9 ._-]*`; duplicates collapse.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Defaults to `ipxe-exit`; kept as text so a bad value gets the reference's 422.
    #[serde(default = "default_boot_mode")]
    pub boot_mode: String,
    /// `0x` and one or two hex digits, or null.
    #[serde(default)]
    pub sanboot_drive: Option<String>,
    /// At most 128 chars, free text.
    #[serde(default)]
    pub target_disk_serial: Option<String>,
    /// Ours: reflash by delta (see [`Machine::delta`]). Absent keeps the stored setting (on
    /// for a new machine), so a script that predates it never turns it back on or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<bool>,
}

fn yes() -> bool {
    true
}

fn default_boot_mode() -> String {
    BootMode::IpxeExit.as_str().to_string()
}

/// A validated [`MachineUpsert`]: what the database stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Bound image ref.
    pub bty_image_ref: Option<String>,
    /// Sorted, deduplicated labels.
    pub labels: Vec<String>,
    /// Boot mode.
    pub boot_mode: BootMode,
    /// BIOS drive for sanboot.
    pub sanboot_drive: Option<String>,
    /// Target disk serial.
    pub target_disk_serial: Option<String>,
    /// Reflash by delta; `None` keeps what is stored (on for a new machine).
    pub delta: Option<bool>,
}

/// One failed constraint, shaped like the reference's 422 `detail` items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Where: `["body", "labels", 3]` style path, rendered as strings.
    pub loc: Vec<String>,
    /// What is wrong.
    pub msg: String,
    /// Error class (`string_pattern_mismatch`, `too_long`, …).
    #[serde(rename = "type")]
    pub kind: String,
}

impl FieldError {
    fn new(loc: &[&str], kind: &str, msg: impl Into<String>) -> FieldError {
        FieldError {
            loc: std::iter::once("body").chain(loc.iter().copied()).map(str::to_string).collect(),
            msg: msg.into(),
            kind: kind.to_string(),
        }
    }
}

impl MachineUpsert {
    /// Checks the reference's constraints; returns the normalised assignment or every error.
    pub fn validate(self) -> Result<Assignment, Vec<FieldError>> {
        let mut errors = Vec::new();
        if let Some(r) = &self.bty_image_ref {
            if !is_hex64(r) {
                errors.push(FieldError::new(
                    &["bty_image_ref"],
                    "string_pattern_mismatch",
                    "String should match pattern '^[0-9a-f]{64}$'",
                ));
            }
        }
        if self.labels.len() > 16 {
            errors.push(FieldError::new(
                &["labels"],
                "too_long",
                format!("List should have at most 16 items after validation, not {}", self.labels.len()),
            ));
        }
        for (i, label) in self.labels.iter().enumerate() {
            if !is_label(label) {
                let idx = i.to_string();
                errors.push(FieldError::new(
                    &["labels", &idx],
                    "string_pattern_mismatch",
                    "String should match pattern '^[A-Za-z0-9][A-Za-z0-9 ._-]*$' and be 1-64 characters",
                ));
            }
        }
        let boot_mode = BootMode::parse(&self.boot_mode);
        if boot_mode.is_none() {
            errors.push(FieldError::new(
                &["boot_mode"],
                "string_pattern_mismatch",
                "String should match pattern '^(ipxe-exit|bty-flash-always|bty-flash-once|bty-tui|bty-inventory)$'",
            ));
        }
        if let Some(d) = &self.sanboot_drive {
            if !is_sanboot_drive(d) {
                errors.push(FieldError::new(
                    &["sanboot_drive"],
                    "string_pattern_mismatch",
                    "String should match pattern '^0x[0-9a-fA-F]{1,2}$'",
                ));
            }
        }
        if let Some(s) = &self.target_disk_serial {
            if s.chars().count() > 128 {
                errors.push(FieldError::new(
                    &["target_disk_serial"],
                    "string_too_long",
                    "String should have at most 128 characters",
                ));
            }
        }
        match (boot_mode, errors.is_empty()) {
            (Some(boot_mode), true) => {
                let mut labels = self.labels;
                labels.sort();
                labels.dedup();
                Ok(Assignment {
                    bty_image_ref: self.bty_image_ref,
                    labels,
                    boot_mode,
                    sanboot_drive: self.sanboot_drive,
                    target_disk_serial: self.target_disk_serial,
                    delta: self.delta,
                })
            }
            _ => Err(errors),
        }
    }
}

/// One disk of an inventory (reference `InventoryDisk`, unknown keys ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryDisk {
    /// Device path, at most 255 chars.
    pub path: String,
    /// Human size as lsblk prints it (`500G`), at most 32 chars.
    #[serde(default)]
    pub size: Option<String>,
    /// Vendor, at most 64 chars.
    #[serde(default)]
    pub vendor: Option<String>,
    /// Model, at most 128 chars.
    #[serde(default)]
    pub model: Option<String>,
    /// Serial, at most 128 chars; what a flash plan names.
    #[serde(default)]
    pub serial: Option<String>,
    /// Transport (`nvme`, `sata`, `usb`), at most 32 chars.
    #[serde(default)]
    pub tran: Option<String>,
    /// Removable medium.
    #[serde(default)]
    pub removable: bool,
    /// Read-only device.
    #[serde(default)]
    pub readonly: bool,
    /// Ours: exact size in bytes, when the agent knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
}

/// The most disks one inventory may list (reference).
pub const MAX_INVENTORY_DISKS: usize = 64;

/// The largest lshw blob stored, serialised (reference: 4 MiB).
pub const MAX_LSHW_BYTES: usize = 4 * 1024 * 1024;

/// The body of `POST /pxe/{mac}/inventory` (unknown keys rejected, as the reference does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryPost {
    /// At most [`MAX_INVENTORY_DISKS`] disks.
    #[serde(default)]
    pub disks: Vec<InventoryDisk>,
    /// `lshw -json` output (object or array) or a hardware summary of the same shape.
    #[serde(default)]
    pub lshw: Option<serde_json::Value>,
}

impl InventoryPost {
    /// Checks counts and lengths; returns every violated constraint.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.disks.len() > MAX_INVENTORY_DISKS {
            errors.push(FieldError::new(
                &["disks"],
                "too_long",
                format!("List should have at most {MAX_INVENTORY_DISKS} items, not {}", self.disks.len()),
            ));
        }
        for (i, d) in self.disks.iter().enumerate() {
            let idx = i.to_string();
            let fields: [(&str, Option<&str>, usize); 6] = [
                ("path", Some(d.path.as_str()), 255),
                ("size", d.size.as_deref(), 32),
                ("vendor", d.vendor.as_deref(), 64),
                ("model", d.model.as_deref(), 128),
                ("serial", d.serial.as_deref(), 128),
                ("tran", d.tran.as_deref(), 32),
            ];
            for (name, value, max) in fields {
                if value.is_some_and(|v| v.chars().count() > max) {
                    errors.push(FieldError::new(
                        &["disks", &idx, name],
                        "string_too_long",
                        format!("String should have at most {max} characters"),
                    ));
                }
            }
        }
        if let Some(lshw) = &self.lshw {
            if !(lshw.is_object() || lshw.is_array() || lshw.is_null()) {
                errors.push(FieldError::new(&["lshw"], "type_error", "lshw must be an object or an array"));
            }
        }
        errors
    }
}

/// The outcome a netboot agent reports: `POST /pxe/{mac}/status`. Unknown fields are refused
/// as the reference does; `figures` is ours, so an agent that sent it and got a 422 (an older
/// server) posts again without it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PxeStatus {
    /// What happened.
    pub status: FlashOutcome,
    /// Why it failed, at most 500 chars.
    #[serde(default)]
    pub reason: String,
    /// Ours: what the flash fetched and wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figures: Option<FlashFigures>,
}

/// Ours: what one flash cost on the wire and on the disk, reported by the agent in its last
/// progress post and its `done`/`failed` status, and kept with the machine's last flash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlashFigures {
    /// The decoded image's size (what the disk must equal).
    pub image_bytes: u64,
    /// Image bytes fetched from the server (Range bodies by delta; the whole stored file
    /// otherwise, absent when the server did not state its length). The chunk index itself is
    /// not counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_fetched: Option<u64>,
    /// Bytes written to the disk with data (zeroed ranges not counted).
    pub bytes_written: u64,
    /// By delta: chunks of the disk compared with the index; absent for a full flash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks_compared: Option<u64>,
    /// By delta: chunks found equal to the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks_unchanged: Option<u64>,
    /// By delta: chunks fetched and written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks_fetched: Option<u64>,
}

/// The two outcomes `/status` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlashOutcome {
    /// The flash completed and verified.
    Done,
    /// The flash could not proceed or failed.
    Failed,
}

/// Ours: live flash progress, `POST /pxe/{mac}/progress` (older servers answer 404).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Bytes written to the target so far.
    pub bytes_written: u64,
    /// Total bytes to write, when known.
    #[serde(default)]
    pub total_bytes: Option<u64>,
    /// Free-form phase name (`download`, `write`, `verify`), at most 32 chars.
    #[serde(default)]
    pub phase: String,
    /// Ours: what the flash fetched and wrote, once it has finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figures: Option<FlashFigures>,
}

/// What the netboot agent should do: `GET /pxe/{mac}/plan` (reference §4.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Plan {
    /// Write `image` to the disk whose serial is `target_disk_serial`, then report.
    Flash {
        /// URL (`http(s)://` or `oras://`) of the image bytes.
        image: String,
        /// Serial of the target disk; no match refuses.
        target_disk_serial: String,
        /// Catalog name of the image.
        name: String,
        /// Content sha256 of the image bytes, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disk_image_sha: Option<String>,
        /// Catalog format id (`img.zst`), when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<String>,
        /// Ours: whether to reflash by delta (compare the disk with the image's chunk index
        /// and fetch only what differs); absent means yes. Without an index the agent
        /// streams the whole image either way.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delta: Option<bool>,
    },
    /// Run the wizard, with this catalog when given.
    Interactive {
        /// Catalog URL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        catalog: Option<String>,
    },
    /// Post the inventory and reboot.
    Inventory,
    /// Nothing to do.
    Exit,
}

/// One image the server can bind machines to (`GET /images`, reference `ImageEntry`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageEntry {
    /// Catalog name.
    pub name: String,
    /// Catalog format id; `""` when unknown.
    pub format: String,
    /// Stored size; 0 when unknown.
    pub size_bytes: u64,
    /// The origin `src` (for stored images: the server URL of the bytes).
    pub url: String,
    /// The value to PUT as `bty_image_ref`.
    #[serde(rename = "ref")]
    pub image_ref: String,
    /// First 12 hex of the content sha256, when known.
    pub sha_short: Option<String>,
    /// Architecture hint.
    pub arch: Option<String>,
    /// Ours: full content sha256, when known.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Ours: disk size the image expands to, when known.
    #[serde(default)]
    pub virtual_size: Option<u64>,
    /// Ours: `true` when the bytes are in this server's image store.
    #[serde(default)]
    pub stored: bool,
    /// Ours: `true` when the store serves the image's chunk index (`{url}.index`), so a
    /// `bty flash --delta` fetches only the chunks that differ.
    #[serde(default)]
    pub delta_ready: bool,
}

/// One audit-log row (reference §6.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Increasing id; the cursor for `before_id`.
    pub id: i64,
    /// ISO-8601 UTC time.
    pub ts: String,
    /// Dotted kind (`machine.flashed`).
    pub kind: String,
    /// Entity class (`machine`, `auth`, `image`).
    pub subject_kind: Option<String>,
    /// Entity id (a MAC, an image ref).
    pub subject_id: Option<String>,
    /// `operator`, `system` or `pxe-client`.
    pub actor: Option<String>,
    /// Request address; null for system events.
    pub source_ip: Option<String>,
    /// One line for people.
    pub summary: String,
    /// Kind-specific JSON.
    pub details: Option<serde_json::Value>,
    /// Whether an operator acknowledged it.
    #[serde(default)]
    pub acknowledged: bool,
}

/// `GET /events` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventPage {
    /// Newest first.
    pub events: Vec<Event>,
}

/// Whether `s` is 64 lower-case hex digits (a ref or a sha256).
pub fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_label(s: &str) -> bool {
    let mut chars = s.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    first_ok
        && s.chars().count() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-'))
}

fn is_sanboot_drive(s: &str) -> bool {
    s.strip_prefix("0x")
        .is_some_and(|h| (1..=2).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Parses a MAC with `:` or `-` separators in any case into `aa:bb:cc:dd:ee:ff`.
pub fn normalize_mac(raw: &str) -> Option<String> {
    let lower = raw.trim().to_ascii_lowercase().replace('-', ":");
    let groups: Vec<&str> = lower.split(':').collect();
    let ok =
        groups.len() == 6 && groups.iter().all(|g| g.len() == 2 && g.bytes().all(|b| b.is_ascii_hexdigit()));
    ok.then_some(lower)
}

/// The proxy-DHCP switch (`GET|PUT /settings/proxy-dhcp`, our addition): whether bty-web asks
/// the appliance's dnsmasq to answer PXE clients on a LAN whose DHCP server it does not control.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyDhcpSettings {
    /// On or off (off by default).
    pub enabled: bool,
    /// The LAN's IPv4 subnet as `ADDR/PREFIX` (`192.168.1.0/24`).
    pub subnet: String,
    /// The NIC to answer on; empty answers on every interface in the subnet.
    pub interface: String,
    /// This host's address clients fetch from; empty picks the local address in the subnet.
    pub server: String,
}

/// What `GET /settings/proxy-dhcp` reports: the switch, the file written, dnsmasq's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyDhcpState {
    /// The switch as stored.
    pub settings: ProxyDhcpSettings,
    /// Where bty-web writes the dnsmasq configuration.
    pub config_path: String,
    /// The configuration file as written (None: not written yet).
    pub config: Option<String>,
    /// The last status line the appliance's bty-proxy-dhcp.service recorded (None: no such
    /// service has reported, e.g. bty-web outside the appliance).
    pub dnsmasq_status: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_normalisation_accepts_colons_and_hyphens_in_any_case() {
        let cases = [
            ("AA-BB-CC-DD-EE-FF", Some("aa:bb:cc:dd:ee:ff")),
            ("aa:bb:cc:dd:ee:ff", Some("aa:bb:cc:dd:ee:ff")),
            ("52:54:00:11:22:3A", Some("52:54:00:11:22:3a")),
            ("aabbccddeeff", None),
            ("aa:bb:cc:dd:ee", None),
            ("aa:bb:cc:dd:ee:fg", None),
            ("aa:bb:cc:dd:ee:ff:00", None),
            ("a:bb:cc:dd:ee:fff", None),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_mac(raw).as_deref(), want, "{raw}");
        }
    }

    #[test]
    fn upsert_defaults_are_the_references() {
        let u: MachineUpsert = serde_json::from_str("{}").unwrap();
        let a = u.validate().unwrap();
        assert_eq!(a.boot_mode, BootMode::IpxeExit);
        assert!(a.labels.is_empty() && a.bty_image_ref.is_none() && a.target_disk_serial.is_none());
    }

    #[test]
    fn upsert_rejects_unknown_fields_and_bad_values() {
        assert!(serde_json::from_str::<MachineUpsert>(r#"{"hostname":"x"}"#).is_err());
        let bad = MachineUpsert {
            bty_image_ref: Some("ABC".into()),
            labels: vec!["-bad".into(), "ok".into()],
            boot_mode: "ramboot".into(),
            sanboot_drive: Some("0x800".into()),
            target_disk_serial: Some("x".repeat(129)),
            delta: None,
        };
        let errors = bad.validate().unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.loc[1].as_str()).collect();
        assert_eq!(fields, ["bty_image_ref", "labels", "boot_mode", "sanboot_drive", "target_disk_serial"]);
    }

    #[test]
    fn upsert_labels_are_sorted_and_deduplicated() {
        let u = MachineUpsert {
            bty_image_ref: None,
            labels: vec!["rack-2".into(), "gpu".into(), "rack-2".into()],
            boot_mode: "bty-tui".into(),
            sanboot_drive: Some("0x81".into()),
            target_disk_serial: None,
            delta: None,
        };
        assert_eq!(u.validate().unwrap().labels, ["gpu", "rack-2"]);
    }

    #[test]
    fn an_upstream_machine_without_our_extras_still_decodes() {
        let old = r#"{"mac":"aa:bb:cc:dd:ee:ff","bty_image_ref":null,"labels":[],"discovered_at":null,
            "last_seen_at":null,"last_seen_ip":null,"boot_mode":"bty-inventory","sanboot_drive":null,
            "last_flashed_at":null,"known_disks":null,"known_disks_at":null,"target_disk_serial":null,
            "created_at":"2026-11-23T12:18:44.050905Z","updated_at":"2026-11-23T12:18:44.050905Z"}"#;
        let m: Machine = serde_json::from_str(old).unwrap();
        assert_eq!(m.boot_mode, BootMode::BtyInventory);
        assert_eq!(m.last_flash_status, None);
    }

    #[test]
    fn inventory_disks_ignore_lsblk_extras_but_the_post_rejects_unknown_keys() {
        let post: InventoryPost = serde_json::from_str(
            r#"{"disks":[{"path":"/dev/sda","size":"500G","type":"disk","mountpoints":[],"serial":"S1"}]}"#,
        )
        .unwrap();
        assert_eq!(post.disks[0].serial.as_deref(), Some("S1"));
        assert!(serde_json::from_str::<InventoryPost>(r#"{"disks":[],"extra":1}"#).is_err());
    }

    #[test]
    fn inventory_with_65_disks_is_invalid() {
        let disk = InventoryDisk {
            path: "/dev/sda".into(),
            size: None,
            vendor: None,
            model: None,
            serial: None,
            tran: None,
            removable: false,
            readonly: false,
            size_bytes: None,
        };
        let post = InventoryPost { disks: vec![disk; 65], lshw: None };
        assert_eq!(post.validate()[0].loc, ["body", "disks"]);
    }

    #[test]
    fn status_accepts_only_done_and_failed_without_extras() {
        let s: PxeStatus = serde_json::from_str(r#"{"status":"done"}"#).unwrap();
        assert_eq!(s.status, FlashOutcome::Done);
        assert!(serde_json::from_str::<PxeStatus>(r#"{"status":"ramboot.up"}"#).is_err());
        assert!(serde_json::from_str::<PxeStatus>(r#"{"status":"done","seconds":3}"#).is_err());
    }

    #[test]
    fn status_with_figures_decodes_and_without_them_serialises_as_the_reference() {
        let s: PxeStatus = serde_json::from_str(
            r#"{"status":"done","figures":{"image_bytes":8,"bytes_fetched":0,"bytes_written":0,"chunks_compared":1,"x":1}}"#,
        )
        .unwrap();
        assert_eq!(s.figures.unwrap().chunks_compared, Some(1));
        let old = PxeStatus { status: FlashOutcome::Failed, reason: "r".into(), figures: None };
        assert_eq!(serde_json::to_string(&old).unwrap(), r#"{"status":"failed","reason":"r"}"#);
    }

    #[test]
    fn plan_json_matches_the_reference_shapes() {
        let flash = Plan::Flash {
            image: "http://h/images/r/a.img".into(),
            target_disk_serial: "S1".into(),
            name: "a.img".into(),
            disk_image_sha: None,
            format: Some("img".into()),
            delta: None,
        };
        assert_eq!(
            serde_json::to_string(&flash).unwrap(),
            r#"{"mode":"flash","image":"http://h/images/r/a.img","target_disk_serial":"S1","name":"a.img","format":"img"}"#
        );
        assert_eq!(serde_json::to_string(&Plan::Exit).unwrap(), r#"{"mode":"exit"}"#);
        assert_eq!(serde_json::to_string(&Plan::Inventory).unwrap(), r#"{"mode":"inventory"}"#);
        let p: Plan =
            serde_json::from_str(r#"{"mode":"interactive","catalog":"http://h/catalog.toml","x":1}"#)
                .unwrap();
        assert_eq!(p, Plan::Interactive { catalog: Some("http://h/catalog.toml".into()) });
    }

    #[test]
    fn progress_from_a_newer_agent_with_extra_fields_decodes() {
        let p: Progress = serde_json::from_str(r#"{"bytes_written":5,"rate":9}"#).unwrap();
        assert_eq!(p.bytes_written, 5);
        assert_eq!(p.total_bytes, None);
    }
}
