//! The wizard as a pure state machine: an [`Event`] (a key, a typed line, a result from a
//! worker) goes in, the state changes, and [`Effect`]s come out for the driver to carry out.
//!
//! Screens follow the operator's path: source → image → disk → confirm → flashing → done, with
//! back from every screen but the flashing one. Every list works three ways: arrows or `j`/`k`
//! and Enter, digits and Enter, or (on a line-at-a-time terminal) a typed line such as `2`,
//! `b` or `yes`. This module does no I/O, reads no clock and draws nothing; `view.rs` draws it
//! and `driver.rs` runs the effects.

use super::backend::{DiskRow, DiskScan, FlashJob, FlashResult, SourceChoice};
use super::key::Key;
use crate::catalog::Entry;
use crate::flash::Progress;

/// The screens, in the order the operator meets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// Pick where images come from.
    Source,
    /// Pick an image.
    Image,
    /// Pick a target disk.
    Disk,
    /// Check what will happen and confirm.
    Confirm,
    /// The flash is running.
    Flashing,
    /// The flash ended: reboot, go back, or quit.
    Done,
}

impl Screen {
    /// Every screen in order, for the breadcrumb.
    pub const ALL: [Screen; 6] =
        [Screen::Source, Screen::Image, Screen::Disk, Screen::Confirm, Screen::Flashing, Screen::Done];

    /// The short name in the breadcrumb.
    pub fn name(self) -> &'static str {
        match self {
            Screen::Source => "Source",
            Screen::Image => "Image",
            Screen::Disk => "Disk",
            Screen::Confirm => "Confirm",
            Screen::Flashing => "Flash",
            Screen::Done => "Done",
        }
    }
}

/// One entry of the source menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceItem {
    /// The catalog given on the command line or by the server's plan.
    Given(String),
    /// The local image root alone.
    Local,
    /// The project's default public catalog.
    Default,
    /// A path or URL typed in.
    Custom,
}

/// One entry of the menu after a flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoneItem {
    /// Reboot into the freshly written disk.
    Reboot,
    /// Back to the disk list with the same image.
    Again,
    /// Leave the wizard.
    Quit,
    /// Switch the machine off (the USB stick's "walk away" ending).
    PowerOff,
}

impl DoneItem {
    /// The menu, in order (power off last, so the long-standing numbers keep their meaning).
    pub const ALL: [DoneItem; 4] = [DoneItem::Reboot, DoneItem::Again, DoneItem::Quit, DoneItem::PowerOff];
}

/// Something that happened: a key, a typed line, or a worker's result.
#[derive(Debug, Clone)]
pub enum Event {
    /// A key on a terminal that delivers keys.
    Key(Key),
    /// A whole line from a line-at-a-time terminal (without the newline).
    Line(String),
    /// The image list for load `generation` arrived (or failed, with the message).
    Images { generation: u64, result: Result<Vec<Entry>, String> },
    /// The disk list for scan `generation` arrived (or failed, with the message).
    Disks { generation: u64, result: Result<DiskScan, String> },
    /// The running flash made progress.
    Progress(Progress),
    /// The running flash ended.
    Finished(FlashResult),
    /// The reboot request failed with this message.
    RebootFailed(String),
    /// Ctrl+C arrived as a signal (line mode) rather than a key.
    Interrupt,
    /// The wizard must end (SIGTERM, hangup, end of input): a running flash is cancelled first.
    Stop(Outcome),
}

/// Work for the driver; the state machine never does it itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Load the image list; answer with [`Event::Images`] carrying `generation`.
    LoadImages { generation: u64, source: SourceChoice },
    /// List disks for this image; answer with [`Event::Disks`] carrying `generation`.
    ScanDisks { generation: u64, image: Entry },
    /// Start writing; answer with [`Event::Progress`] and finally [`Event::Finished`].
    StartFlash(FlashJob),
    /// Ask the running flash to stop.
    CancelFlash,
    /// Reboot the machine; answer with [`Event::RebootFailed`] if that fails.
    Reboot,
    /// Switch the machine off; answer with [`Event::RebootFailed`] if that fails.
    PowerOff,
    /// Leave the wizard.
    Quit(Outcome),
}

/// How the wizard ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The operator quit.
    Quit,
    /// A reboot (or power off) was requested and accepted.
    Reboot,
    /// Stopped by a signal.
    Interrupted,
}

/// A line of feedback under the screen body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Whether it reports a problem.
    pub error: bool,
    /// The words.
    pub text: String,
}

/// Something that is loaded in the background.
#[derive(Debug, Clone, PartialEq)]
pub enum Loading<T> {
    /// Not asked for yet.
    Idle,
    /// A worker is on it.
    Pending,
    /// Here it is.
    Ready(T),
}

/// The state of a running flash.
#[derive(Debug, Clone, Default)]
pub struct Flashing {
    /// The latest progress report.
    pub progress: Option<Progress>,
    /// The "cancel the flash?" question is showing.
    pub asking: bool,
    /// Cancel was requested; waiting for the engine to stop.
    pub cancelling: bool,
}

/// What the wizard is set up with.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// A catalog given on the command line or by the server's plan; loaded first.
    pub catalog: Option<String>,
    /// The local image root, for display.
    pub image_root: String,
    /// The default public catalog offered on the source screen.
    pub default_catalog: String,
    /// Whether read-back verification starts switched on.
    pub verify: bool,
    /// A line shown in the header (e.g. why the plan agent fell back to the wizard).
    pub banner: Option<String>,
}

/// At most this many digits are collected for a pick; no list is longer than 9999 rows.
const MAX_DIGITS: usize = 4;
/// How far PageUp/PageDown move.
const PAGE: usize = 10;

/// The wizard's whole state.
#[derive(Debug, Clone)]
pub struct Wizard {
    pub(super) setup: Setup,
    pub(super) screen: Screen,
    pub(super) help: bool,
    pub(super) message: Option<Message>,
    pub(super) sources: Vec<SourceItem>,
    pub(super) source_cursor: usize,
    /// Text typed for a custom catalog, while the field is open.
    pub(super) source_input: Option<String>,
    /// The source whose images are listed (or loading).
    pub(super) source: Option<SourceChoice>,
    pub(super) images: Loading<Vec<Entry>>,
    pub(super) image_cursor: usize,
    pub(super) image: Option<Entry>,
    pub(super) disks: Loading<DiskScan>,
    pub(super) disk_cursor: usize,
    pub(super) disk: Option<DiskRow>,
    /// Digits typed to pick a row, or the letters of `yes` on the confirm screen.
    pub(super) typed: String,
    pub(super) verify: bool,
    pub(super) flashing: Option<Flashing>,
    pub(super) result: Option<FlashResult>,
    pub(super) done_cursor: usize,
    /// Identifies the newest background load; older answers are ignored.
    generation: u64,
    /// The first image list is still loading; an empty local root then opens the source menu.
    first_load: bool,
    /// A stop was requested while flashing; leave once the engine has stopped.
    stopping: Option<Outcome>,
}

impl Wizard {
    /// A wizard at its first screen, and the effects that start it (loading the given catalog,
    /// or the local image root, which skips the source menu when it holds images).
    pub fn new(setup: Setup) -> (Wizard, Vec<Effect>) {
        let mut sources = Vec::new();
        if let Some(c) = &setup.catalog {
            sources.push(SourceItem::Given(c.clone()));
        }
        sources.extend([SourceItem::Local, SourceItem::Default, SourceItem::Custom]);
        let first = match &setup.catalog {
            Some(c) => SourceChoice::Catalog(c.clone()),
            None => SourceChoice::Local,
        };
        let verify = setup.verify;
        let mut w = Wizard {
            setup,
            screen: Screen::Image,
            help: false,
            message: None,
            sources,
            source_cursor: 0,
            source_input: None,
            source: None,
            images: Loading::Idle,
            image_cursor: 0,
            image: None,
            disks: Loading::Idle,
            disk_cursor: 0,
            disk: None,
            typed: String::new(),
            verify,
            flashing: None,
            result: None,
            done_cursor: 0,
            generation: 0,
            first_load: true,
            stopping: None,
        };
        let effects = w.load(first);
        (w, effects)
    }

    /// The screen showing now.
    pub fn screen(&self) -> Screen {
        self.screen
    }

    /// The feedback line, if any.
    pub fn message(&self) -> Option<&Message> {
        self.message.as_ref()
    }

    /// Applies one event; returns what the driver must do.
    pub fn handle(&mut self, event: Event) -> Vec<Effect> {
        match event {
            Event::Key(key) => self.key(key),
            Event::Line(line) => self.line(&line),
            Event::Images { generation, result } => self.images_arrived(generation, result),
            Event::Disks { generation, result } => self.disks_arrived(generation, result),
            Event::Progress(p) => {
                if let Some(f) = &mut self.flashing {
                    f.progress = Some(p);
                }
                Vec::new()
            }
            Event::Finished(result) => self.finished(result),
            Event::RebootFailed(msg) => {
                self.error(format!("reboot failed: {msg}"));
                Vec::new()
            }
            Event::Interrupt => {
                self.help = false;
                self.source_input = None;
                self.key(Key::Interrupt)
            }
            Event::Stop(outcome) => self.stop(outcome),
        }
    }

    fn key(&mut self, key: Key) -> Vec<Effect> {
        if std::mem::take(&mut self.help) && key != Key::Interrupt {
            // Any key closes the help; Ctrl+C also does what it always does.
            return Vec::new();
        }
        self.message = None;
        if self.source_input.is_some() {
            return self.text_key(key);
        }
        if self.screen == Screen::Flashing {
            return self.flashing_key(key);
        }
        if self.screen == Screen::Confirm {
            if let Some(effects) = self.confirm_key(key) {
                return effects;
            }
        }
        match key {
            Key::Interrupt | Key::Char('q') => self.quit(Outcome::Quit),
            Key::Char('?') => {
                self.help = true;
                Vec::new()
            }
            Key::Esc | Key::Char('b') => self.back(),
            // "No" to the confirm question is a step back, as in the Python bty.
            Key::Char('n') if self.screen == Screen::Confirm => self.back(),
            Key::Char('r') => self.rescan(),
            Key::Char('v') if self.screen == Screen::Confirm => {
                self.verify = !self.verify;
                Vec::new()
            }
            Key::Up | Key::Char('k') => self.move_cursor(-1),
            Key::Down | Key::Char('j') => self.move_cursor(1),
            Key::PageUp => self.move_cursor(-(PAGE as isize)),
            Key::PageDown => self.move_cursor(PAGE as isize),
            Key::Home => self.move_cursor(isize::MIN / 2),
            Key::End => self.move_cursor(isize::MAX / 2),
            Key::Char(d) if d.is_ascii_digit() => self.digit(d),
            Key::Backspace => {
                self.typed.pop();
                Vec::new()
            }
            Key::KillLine => {
                self.typed.clear();
                Vec::new()
            }
            Key::Enter => {
                self.typed.clear();
                self.pick()
            }
            _ => Vec::new(),
        }
    }

    /// A line from a line-at-a-time terminal: a number, a command word, or typed text.
    fn line(&mut self, line: &str) -> Vec<Effect> {
        self.help = false;
        self.message = None;
        if self.source_input.is_some() {
            self.source_input = Some(line.trim().to_string());
            return self.text_key(Key::Enter);
        }
        let word = line.trim().to_ascii_lowercase();
        if !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit()) {
            if matches!(self.screen, Screen::Confirm | Screen::Flashing) {
                self.error(format!("{word:?} is not an answer here"));
                return Vec::new();
            }
            self.typed.clear();
            let mut effects = Vec::new();
            for d in word.chars() {
                effects.extend(self.key(Key::Char(d)));
            }
            if self.message.is_some() {
                return effects;
            }
            effects.extend(self.key(Key::Enter));
            return effects;
        }
        let key = match word.as_str() {
            "" => return Vec::new(),
            "yes" | "y" if self.screen == Screen::Confirm => {
                self.typed = word;
                return self.confirm();
            }
            "y" | "yes" => Key::Char('y'),
            "n" | "no" => Key::Char('n'),
            "b" | "back" | "esc" => Key::Esc,
            "q" | "quit" | "exit" => Key::Char('q'),
            "r" | "rescan" | "refresh" => Key::Char('r'),
            "?" | "h" | "help" => Key::Char('?'),
            "v" | "verify" => Key::Char('v'),
            _ => {
                self.error(format!(
                    "unrecognised choice {word:?}: type a number, b (back), r (rescan), q (quit) or ? (help)"
                ));
                return Vec::new();
            }
        };
        self.key(key)
    }

    /// Keys while the custom catalog field is open.
    fn text_key(&mut self, key: Key) -> Vec<Effect> {
        let Some(text) = &mut self.source_input else { return Vec::new() };
        match key {
            Key::Char(c) => text.push(c),
            Key::Backspace => {
                text.pop();
            }
            Key::KillLine => text.clear(),
            Key::Esc => self.source_input = None,
            Key::Interrupt => {
                self.source_input = None;
                return self.quit(Outcome::Quit);
            }
            Key::Enter => {
                let spec = text.trim().to_string();
                self.source_input = None;
                if spec.is_empty() {
                    return Vec::new();
                }
                return self.load(SourceChoice::Catalog(spec));
            }
            _ => {}
        }
        Vec::new()
    }

    /// Keys on the confirm screen that build up `yes`; `None` lets the common keys handle it.
    fn confirm_key(&mut self, key: Key) -> Option<Vec<Effect>> {
        match key {
            Key::Char(c) => {
                let candidate = format!("{}{}", self.typed, c.to_ascii_lowercase());
                if "yes".starts_with(&candidate) {
                    self.typed = candidate;
                } else if self.typed.is_empty() {
                    return None;
                } else {
                    self.error("type yes and press Enter to flash, or Esc to go back");
                }
            }
            Key::Backspace => {
                self.typed.pop();
            }
            Key::KillLine => self.typed.clear(),
            Key::Esc if !self.typed.is_empty() => self.typed.clear(),
            Key::Enter => return Some(self.confirm()),
            _ => return None,
        }
        Some(Vec::new())
    }

    /// Enter on the confirm screen: flash when the right word was typed.
    fn confirm(&mut self) -> Vec<Effect> {
        let typed = std::mem::take(&mut self.typed);
        let (Some(image), Some(disk)) = (&self.image, &self.disk) else { return Vec::new() };
        let needs_yes = disk.holds_data();
        if typed != "yes" && (needs_yes || typed != "y") {
            let path = disk.disk.path.display();
            if needs_yes {
                self.error(format!("type yes and press Enter to erase {path} and flash"));
            } else {
                self.error(format!("type y and press Enter to flash {path}"));
            }
            return Vec::new();
        }
        let job = FlashJob { image: image.clone(), target: disk.disk.path.clone(), verify: self.verify };
        self.screen = Screen::Flashing;
        self.flashing = Some(Flashing::default());
        self.result = None;
        vec![Effect::StartFlash(job)]
    }

    /// Keys while flashing: only cancelling, and it asks first.
    fn flashing_key(&mut self, key: Key) -> Vec<Effect> {
        let Some(f) = &mut self.flashing else { return Vec::new() };
        if f.cancelling {
            return Vec::new();
        }
        if f.asking {
            match key {
                Key::Char('y') | Key::Interrupt => {
                    f.asking = false;
                    f.cancelling = true;
                    return vec![Effect::CancelFlash];
                }
                Key::Char('n') | Key::Char('b') | Key::Esc | Key::Enter => f.asking = false,
                _ => {}
            }
            return Vec::new();
        }
        match key {
            Key::Interrupt | Key::Char('q') | Key::Char('b') | Key::Esc => f.asking = true,
            Key::Char('?') => self.help = true,
            _ => {}
        }
        Vec::new()
    }

    fn digit(&mut self, d: char) -> Vec<Effect> {
        if self.typed.len() >= MAX_DIGITS {
            return Vec::new();
        }
        self.typed.push(d);
        let len = self.list_len();
        match self.typed.parse::<usize>() {
            Ok(n) if (1..=len).contains(&n) => self.set_cursor(n - 1),
            _ => {
                let typed = std::mem::take(&mut self.typed);
                if len == 0 {
                    self.error("there is nothing to pick here");
                } else {
                    self.error(format!("{typed} is out of range; valid numbers are 1..{len}"));
                }
            }
        }
        Vec::new()
    }

    fn move_cursor(&mut self, by: isize) -> Vec<Effect> {
        self.typed.clear();
        let len = self.list_len();
        if len > 0 {
            let at = self.cursor().saturating_add_signed(by).min(len - 1);
            self.set_cursor(at);
        }
        Vec::new()
    }

    /// How many rows the current screen's list has.
    pub(super) fn list_len(&self) -> usize {
        match self.screen {
            Screen::Source => self.sources.len(),
            Screen::Image => match &self.images {
                Loading::Ready(v) => v.len(),
                _ => 0,
            },
            Screen::Disk => match &self.disks {
                Loading::Ready(s) => s.disks.len(),
                _ => 0,
            },
            Screen::Done => DoneItem::ALL.len(),
            Screen::Confirm | Screen::Flashing => 0,
        }
    }

    /// The highlighted row of the current screen's list.
    pub(super) fn cursor(&self) -> usize {
        match self.screen {
            Screen::Source => self.source_cursor,
            Screen::Image => self.image_cursor,
            Screen::Disk => self.disk_cursor,
            Screen::Done => self.done_cursor,
            Screen::Confirm | Screen::Flashing => 0,
        }
    }

    fn set_cursor(&mut self, at: usize) {
        match self.screen {
            Screen::Source => self.source_cursor = at,
            Screen::Image => self.image_cursor = at,
            Screen::Disk => self.disk_cursor = at,
            Screen::Done => self.done_cursor = at,
            Screen::Confirm | Screen::Flashing => {}
        }
    }

    /// Enter on a list: take the highlighted row.
    fn pick(&mut self) -> Vec<Effect> {
        match self.screen {
            Screen::Source => match self.sources.get(self.source_cursor).cloned() {
                Some(SourceItem::Given(c)) => self.load(SourceChoice::Catalog(c)),
                Some(SourceItem::Local) => self.load(SourceChoice::Local),
                Some(SourceItem::Default) => {
                    self.load(SourceChoice::Catalog(self.setup.default_catalog.clone()))
                }
                Some(SourceItem::Custom) => {
                    self.source_input = Some(String::new());
                    Vec::new()
                }
                None => Vec::new(),
            },
            Screen::Image => {
                let Loading::Ready(images) = &self.images else { return Vec::new() };
                let Some(image) = images.get(self.image_cursor).cloned() else { return Vec::new() };
                self.image = Some(image);
                self.disk_cursor = 0;
                self.scan_disks()
            }
            Screen::Disk => {
                let Loading::Ready(scan) = &self.disks else { return Vec::new() };
                let Some(row) = scan.disks.get(self.disk_cursor) else { return Vec::new() };
                if let Some(why) = &row.refusal {
                    let msg = format!("{} cannot be used: {why}", row.disk.path.display());
                    self.error(msg);
                    return Vec::new();
                }
                self.disk = Some(row.clone());
                self.screen = Screen::Confirm;
                self.typed.clear();
                Vec::new()
            }
            Screen::Done => match DoneItem::ALL.get(self.done_cursor) {
                Some(DoneItem::Reboot) => {
                    self.info("rebooting...");
                    vec![Effect::Reboot]
                }
                Some(DoneItem::PowerOff) => {
                    self.info("powering off...");
                    vec![Effect::PowerOff]
                }
                Some(DoneItem::Again) => self.back(),
                Some(DoneItem::Quit) => self.quit(Outcome::Quit),
                None => Vec::new(),
            },
            Screen::Confirm | Screen::Flashing => Vec::new(),
        }
    }

    /// Esc / `b`: one screen back.
    fn back(&mut self) -> Vec<Effect> {
        self.typed.clear();
        match self.screen {
            Screen::Source => Vec::new(),
            Screen::Image => {
                // An answer still on its way is for a source the operator left.
                self.generation += 1;
                if self.images == Loading::Pending {
                    self.images = Loading::Idle;
                }
                self.screen = Screen::Source;
                Vec::new()
            }
            Screen::Disk => {
                self.generation += 1;
                self.image = None;
                self.disks = Loading::Idle;
                self.screen = Screen::Image;
                Vec::new()
            }
            // The disks may have changed meanwhile (a stick pulled, a flash done): list again.
            Screen::Confirm | Screen::Done => {
                self.disk = None;
                self.scan_disks()
            }
            Screen::Flashing => Vec::new(),
        }
    }

    /// `r`: list again.
    fn rescan(&mut self) -> Vec<Effect> {
        match (self.screen, self.source.clone()) {
            (Screen::Image, Some(source)) => self.load(source),
            (Screen::Disk, _) => self.scan_disks(),
            _ => Vec::new(),
        }
    }

    fn load(&mut self, source: SourceChoice) -> Vec<Effect> {
        self.generation += 1;
        self.source = Some(source.clone());
        self.images = Loading::Pending;
        self.image_cursor = 0;
        self.screen = Screen::Image;
        vec![Effect::LoadImages { generation: self.generation, source }]
    }

    fn scan_disks(&mut self) -> Vec<Effect> {
        let Some(image) = self.image.clone() else { return Vec::new() };
        self.generation += 1;
        self.disks = Loading::Pending;
        self.screen = Screen::Disk;
        vec![Effect::ScanDisks { generation: self.generation, image }]
    }

    fn images_arrived(&mut self, generation: u64, result: Result<Vec<Entry>, String>) -> Vec<Effect> {
        if generation != self.generation {
            return Vec::new();
        }
        let first = std::mem::replace(&mut self.first_load, false);
        match result {
            Ok(images) => {
                if first && images.is_empty() && self.source == Some(SourceChoice::Local) {
                    // Nothing local: the operator has to name a catalog first.
                    self.screen = Screen::Source;
                    self.info(format!("no images in {}; pick a catalog", self.setup.image_root));
                }
                self.image_cursor = self.image_cursor.min(images.len().saturating_sub(1));
                self.images = Loading::Ready(images);
            }
            Err(e) => {
                // Stay usable: back to the source menu with the reason (which names the catalog
                // or the image root) on screen.
                self.images = Loading::Idle;
                self.screen = Screen::Source;
                self.error(e);
            }
        }
        Vec::new()
    }

    fn disks_arrived(&mut self, generation: u64, result: Result<DiskScan, String>) -> Vec<Effect> {
        if generation != self.generation {
            return Vec::new();
        }
        match result {
            Ok(scan) => {
                // Keep the highlight on a disk that may be picked, else move to the first one.
                let pickable = |i: usize| scan.disks.get(i).is_some_and(|d| d.refusal.is_none());
                if !pickable(self.disk_cursor) {
                    self.disk_cursor = (0..scan.disks.len()).find(|&i| pickable(i)).unwrap_or(0);
                }
                self.disks = Loading::Ready(scan);
            }
            Err(e) => {
                self.disks = Loading::Ready(DiskScan { image_size: None, disks: Vec::new() });
                self.error(format!("listing disks failed: {e}"));
            }
        }
        Vec::new()
    }

    fn finished(&mut self, result: FlashResult) -> Vec<Effect> {
        self.flashing = None;
        self.done_cursor = if result.is_ok() { 0 } else { 1 };
        self.result = Some(result);
        self.screen = Screen::Done;
        match self.stopping {
            Some(outcome) => self.quit(outcome),
            None => Vec::new(),
        }
    }

    fn stop(&mut self, outcome: Outcome) -> Vec<Effect> {
        match &mut self.flashing {
            Some(f) => {
                self.stopping = Some(outcome);
                if f.cancelling {
                    return Vec::new();
                }
                f.asking = false;
                f.cancelling = true;
                vec![Effect::CancelFlash]
            }
            None => self.quit(outcome),
        }
    }

    fn quit(&mut self, outcome: Outcome) -> Vec<Effect> {
        vec![Effect::Quit(outcome)]
    }

    fn error(&mut self, text: impl Into<String>) {
        self.message = Some(Message { error: true, text: text.into() });
    }

    fn info(&mut self, text: impl Into<String>) {
        self.message = Some(Message { error: false, text: text.into() });
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::disk::{Disk, Partition, Transport};
    use crate::error::ErrorKind;
    use crate::flash::{FlashReport, Phase};
    use crate::tui::backend::Contents;
    use crate::tui::backend::FlashFailure;
    use std::path::PathBuf;

    pub fn entry(name: &str) -> Entry {
        Entry {
            name: name.to_string(),
            src: format!("/images/{name}"),
            sha256: None,
            format: Some("img".into()),
            size_bytes: Some(4 << 20),
            description: None,
            arch: Some("x86_64".into()),
            image_ref: None,
        }
    }

    pub fn disk(name: &str, refusal: Option<&str>, blank: bool) -> DiskRow {
        DiskRow {
            disk: Disk {
                name: name.to_string(),
                path: PathBuf::from(format!("/dev/{name}")),
                size_bytes: 64 << 20,
                vendor: None,
                model: Some("Test Disk".into()),
                serial: Some(format!("SN-{name}")),
                transport: Transport::Loop,
                removable: false,
                read_only: false,
                rotational: false,
                zeroes_offloaded: false,
                logical_sector_size: 512,
                physical_sector_size: 512,
                mountpoints: Vec::new(),
                partitions: Vec::new(),
                holds_running_system: false,
            },
            refusal: refusal.map(str::to_string),
            contents: if blank { Contents::Blank } else { Contents::Data },
        }
    }

    pub fn report() -> FlashReport {
        FlashReport {
            format: crate::image::Format::Raw,
            image_bytes: 4 << 20,
            bytes_written: 4 << 20,
            bytes_zeroed: 0,
            bytes_unchanged: 0,
            source_sha256: "ab".repeat(32),
            verified: None,
            seconds: 1.0,
            network_delta: None,
        }
    }

    pub fn setup(catalog: Option<&str>) -> Setup {
        Setup {
            catalog: catalog.map(str::to_string),
            image_root: "/images".into(),
            default_catalog: "https://example.org/catalog.toml".into(),
            verify: false,
            banner: None,
        }
    }

    fn keys(w: &mut Wizard, keys: &[Key]) -> Vec<Effect> {
        keys.iter().flat_map(|k| w.handle(Event::Key(*k))).collect()
    }

    fn typed(w: &mut Wizard, text: &str) -> Vec<Effect> {
        text.chars().flat_map(|c| w.handle(Event::Key(Key::Char(c)))).collect()
    }

    fn generation_of(effects: &[Effect]) -> u64 {
        match effects.last() {
            Some(Effect::LoadImages { generation, .. } | Effect::ScanDisks { generation, .. }) => *generation,
            other => panic!("expected a load, got {other:?}"),
        }
    }

    /// A wizard on the image screen with three local images.
    fn with_images() -> Wizard {
        let (mut w, effects) = Wizard::new(setup(None));
        let g = generation_of(&effects);
        let images = vec![entry("a.img"), entry("b.img"), entry("c.img")];
        w.handle(Event::Images { generation: g, result: Ok(images) });
        w
    }

    /// A wizard on the disk screen: one refused disk, one blank disk, one holding data.
    pub fn at_disks() -> Wizard {
        let mut w = with_images();
        let effects = keys(&mut w, &[Key::Enter]);
        let g = generation_of(&effects);
        let disks = vec![
            disk("sda", Some("holds the running system"), false),
            disk("loop0", None, true),
            disk("loop1", None, false),
        ];
        w.handle(Event::Disks { generation: g, result: Ok(DiskScan { image_size: Some(4 << 20), disks }) });
        w
    }

    /// A wizard on the confirm screen for disk number `n` (1-based).
    pub fn at_confirm(n: char) -> Wizard {
        let mut w = at_disks();
        keys(&mut w, &[Key::Char(n), Key::Enter]);
        assert_eq!(w.screen, Screen::Confirm);
        w
    }

    pub fn flashing() -> Wizard {
        let mut w = at_confirm('3');
        typed(&mut w, "yes");
        keys(&mut w, &[Key::Enter]);
        assert_eq!(w.screen, Screen::Flashing);
        w
    }

    #[test]
    fn starts_by_loading_the_local_root_and_an_empty_root_opens_the_source_menu() {
        let (mut w, effects) = Wizard::new(setup(None));
        assert_eq!(effects, vec![Effect::LoadImages { generation: 1, source: SourceChoice::Local }]);
        assert_eq!(w.screen, Screen::Image);
        w.handle(Event::Images { generation: 1, result: Ok(Vec::new()) });
        assert_eq!(w.screen, Screen::Source);
        assert_eq!(w.sources, vec![SourceItem::Local, SourceItem::Default, SourceItem::Custom]);
    }

    #[test]
    fn local_images_skip_the_source_menu() {
        let w = with_images();
        assert_eq!(w.screen, Screen::Image);
        assert_eq!(w.list_len(), 3);
    }

    #[test]
    fn a_given_catalog_is_loaded_first_and_listed_first() {
        let (w, effects) = Wizard::new(setup(Some("http://srv/catalog.toml")));
        let source = SourceChoice::Catalog("http://srv/catalog.toml".into());
        assert_eq!(effects, vec![Effect::LoadImages { generation: 1, source }]);
        assert_eq!(w.sources[0], SourceItem::Given("http://srv/catalog.toml".into()));
    }

    #[test]
    fn a_catalog_that_fails_to_load_returns_to_the_source_menu_with_the_reason_and_stays_usable() {
        let (mut w, _) = Wizard::new(setup(Some("http://srv/missing.toml")));
        let reason = "loading catalog http://srv/missing.toml: HTTP 404";
        w.handle(Event::Images { generation: 1, result: Err(reason.into()) });
        assert_eq!(w.screen, Screen::Source);
        assert_eq!(w.message(), Some(&Message { error: true, text: reason.into() }));
        // Pick "Local images" (2) and it loads.
        let effects = keys(&mut w, &[Key::Char('2'), Key::Enter]);
        assert_eq!(effects, vec![Effect::LoadImages { generation: 2, source: SourceChoice::Local }]);
        assert_eq!(w.screen, Screen::Image);
    }

    #[test]
    fn an_answer_for_a_source_the_operator_left_is_ignored() {
        let (mut w, _) = Wizard::new(setup(Some("http://slow/catalog.toml")));
        keys(&mut w, &[Key::Esc]);
        assert_eq!(w.screen, Screen::Source);
        w.handle(Event::Images { generation: 1, result: Ok(vec![entry("late.img")]) });
        assert_eq!(w.screen, Screen::Source);
        assert_eq!(w.images, Loading::Idle);
    }

    #[test]
    fn arrows_and_jk_move_within_the_list_and_stop_at_the_ends() {
        let mut w = with_images();
        keys(&mut w, &[Key::Down, Key::Char('j'), Key::Down, Key::Down]);
        assert_eq!(w.image_cursor, 2);
        keys(&mut w, &[Key::Up, Key::Char('k'), Key::Char('k')]);
        assert_eq!(w.image_cursor, 0);
        keys(&mut w, &[Key::End]);
        assert_eq!(w.image_cursor, 2);
        keys(&mut w, &[Key::Home]);
        assert_eq!(w.image_cursor, 0);
        keys(&mut w, &[Key::PageDown]);
        assert_eq!(w.image_cursor, 2);
        keys(&mut w, &[Key::PageUp]);
        assert_eq!(w.image_cursor, 0);
    }

    #[test]
    fn a_digit_highlights_its_row_and_enter_picks_it() {
        let mut w = with_images();
        keys(&mut w, &[Key::Char('3')]);
        assert_eq!((w.image_cursor, w.typed.as_str()), (2, "3"));
        let effects = keys(&mut w, &[Key::Enter]);
        assert_eq!(w.image.as_ref().map(|e| e.name.as_str()), Some("c.img"));
        assert!(matches!(&effects[..], [Effect::ScanDisks { image, .. }] if image.name == "c.img"));
        assert_eq!(w.screen, Screen::Disk);
    }

    #[test]
    fn multi_digit_numbers_pick_rows_past_nine() {
        let (mut w, _) = Wizard::new(setup(None));
        let images: Vec<Entry> = (1..=12).map(|i| entry(&format!("{i}.img"))).collect();
        w.handle(Event::Images { generation: 1, result: Ok(images) });
        keys(&mut w, &[Key::Char('1'), Key::Char('2'), Key::Enter]);
        assert_eq!(w.image.map(|e| e.name), Some("12.img".to_string()));
    }

    #[test]
    fn an_out_of_range_number_says_so_and_picks_nothing() {
        let mut w = with_images();
        keys(&mut w, &[Key::Char('7')]);
        assert_eq!(w.message().map(|m| m.text.as_str()), Some("7 is out of range; valid numbers are 1..3"));
        assert!(w.typed.is_empty());
        keys(&mut w, &[Key::Char('0')]);
        assert!(w.message().is_some_and(|m| m.error));
        assert_eq!(w.screen, Screen::Image);
        assert_eq!(w.image, None);
    }

    #[test]
    fn backspace_and_ctrl_u_edit_the_typed_number() {
        let mut w = with_images();
        keys(&mut w, &[Key::Char('1'), Key::Backspace]);
        assert!(w.typed.is_empty());
        keys(&mut w, &[Key::Char('2'), Key::KillLine]);
        assert!(w.typed.is_empty());
    }

    #[test]
    fn a_refused_disk_is_not_picked_by_enter_or_by_number() {
        let mut w = at_disks();
        // The cursor starts on the first disk that may be picked.
        assert_eq!(w.disk_cursor, 1);
        keys(&mut w, &[Key::Up, Key::Enter]);
        assert_eq!(w.screen, Screen::Disk);
        assert_eq!(w.disk, None);
        let m = w.message().expect("a message");
        assert!(m.error && m.text == "/dev/sda cannot be used: holds the running system", "{m:?}");
        keys(&mut w, &[Key::Char('1'), Key::Enter]);
        assert_eq!((w.screen, w.disk.is_none()), (Screen::Disk, true));
        let effects = w.handle(Event::Line("1".into()));
        assert!(effects.is_empty());
        assert_eq!((w.screen, w.disk.is_none()), (Screen::Disk, true));
    }

    #[test]
    fn picking_an_eligible_disk_opens_the_confirm_screen() {
        let w = at_confirm('2');
        assert_eq!(w.disk.as_ref().map(|d| d.disk.name.as_str()), Some("loop0"));
    }

    #[test]
    fn confirm_without_yes_does_nothing() {
        let mut w = at_confirm('3');
        for attempt in ["", "y", "ye"] {
            typed(&mut w, attempt);
            let effects = keys(&mut w, &[Key::Enter]);
            assert!(effects.is_empty(), "{attempt:?} flashed");
            assert_eq!(w.screen, Screen::Confirm, "{attempt:?}");
            assert!(w.message().is_some_and(|m| m.error && m.text.contains("type yes")), "{attempt:?}");
        }
        // Letters that do not spell yes are refused once typing has begun.
        typed(&mut w, "yx");
        assert_eq!(w.typed, "y");
        assert!(w.message().is_some_and(|m| m.error));
        assert!(w.handle(Event::Line("no way".into())).is_empty());
        assert_eq!(w.screen, Screen::Confirm);
    }

    #[test]
    fn typed_yes_starts_the_flash_with_the_chosen_image_disk_and_verify_setting() {
        let mut w = at_confirm('3');
        keys(&mut w, &[Key::Char('v')]);
        typed(&mut w, "YeS");
        let effects = keys(&mut w, &[Key::Enter]);
        let expected = FlashJob { image: entry("a.img"), target: PathBuf::from("/dev/loop1"), verify: true };
        assert_eq!(effects, vec![Effect::StartFlash(expected)]);
        assert_eq!(w.screen, Screen::Flashing);
    }

    #[test]
    fn a_blank_disk_needs_only_y() {
        let mut w = at_confirm('2');
        typed(&mut w, "y");
        let effects = keys(&mut w, &[Key::Enter]);
        assert!(
            matches!(&effects[..], [Effect::StartFlash(job)] if job.target == std::path::Path::new("/dev/loop0"))
        );
    }

    #[test]
    fn v_toggles_verify_on_the_confirm_screen_only() {
        let mut w = at_confirm('2');
        keys(&mut w, &[Key::Char('v')]);
        assert!(w.verify);
        keys(&mut w, &[Key::Char('v')]);
        assert!(!w.verify);
        let mut w = at_disks();
        keys(&mut w, &[Key::Char('v')]);
        assert!(!w.verify);
    }

    #[test]
    fn back_goes_one_screen_back_from_every_screen() {
        // Source: nowhere to go.
        let (mut w, _) = Wizard::new(setup(None));
        w.handle(Event::Images { generation: 1, result: Ok(Vec::new()) });
        assert!(keys(&mut w, &[Key::Esc]).is_empty());
        assert_eq!(w.screen, Screen::Source);
        // Image → Source.
        let mut w = with_images();
        keys(&mut w, &[Key::Char('b')]);
        assert_eq!(w.screen, Screen::Source);
        // Disk → Image, forgetting the image.
        let mut w = at_disks();
        keys(&mut w, &[Key::Esc]);
        assert_eq!((w.screen, w.image.is_none()), (Screen::Image, true));
        // Confirm → Disk, listing disks again; n (no) does the same.
        for key in [Key::Char('b'), Key::Char('n'), Key::Esc] {
            let mut w = at_confirm('2');
            let effects = keys(&mut w, &[key]);
            assert!(matches!(&effects[..], [Effect::ScanDisks { .. }]), "{key:?}");
            assert_eq!((w.screen, w.disk.is_none()), (Screen::Disk, true), "{key:?}");
        }
        // Done → Disk with the same image.
        let mut w = flashing();
        w.handle(Event::Finished(Ok(report())));
        let effects = keys(&mut w, &[Key::Esc]);
        assert!(matches!(&effects[..], [Effect::ScanDisks { image, .. }] if image.name == "a.img"));
        assert_eq!(w.screen, Screen::Disk);
        // Flashing: back asks about cancelling instead.
        let mut w = flashing();
        assert!(keys(&mut w, &[Key::Esc]).is_empty());
        assert_eq!(w.screen, Screen::Flashing);
        assert!(w.flashing.as_ref().is_some_and(|f| f.asking));
    }

    #[test]
    fn r_rescans_images_and_disks() {
        let mut w = with_images();
        let effects = keys(&mut w, &[Key::Char('r')]);
        assert!(matches!(&effects[..], [Effect::LoadImages { source: SourceChoice::Local, .. }]));
        assert_eq!(w.images, Loading::Pending);
        let mut w = at_disks();
        let effects = keys(&mut w, &[Key::Char('r')]);
        assert!(matches!(&effects[..], [Effect::ScanDisks { .. }]));
        let mut w = at_confirm('2');
        assert!(keys(&mut w, &[Key::Char('r')]).is_empty());
    }

    #[test]
    fn a_stale_disk_list_is_ignored() {
        let mut w = at_disks();
        let effects = keys(&mut w, &[Key::Char('r')]);
        let g = generation_of(&effects);
        w.handle(Event::Disks {
            generation: g - 1,
            result: Ok(DiskScan { image_size: None, disks: vec![] }),
        });
        assert_eq!(w.disks, Loading::Pending);
    }

    #[test]
    fn q_and_ctrl_c_quit_from_every_screen_but_flashing() {
        let wizards = [with_images(), at_disks(), at_confirm('2')];
        for mut w in wizards {
            let screen = w.screen;
            assert_eq!(
                keys(&mut w.clone(), &[Key::Char('q')]),
                vec![Effect::Quit(Outcome::Quit)],
                "{screen:?}"
            );
            assert_eq!(keys(&mut w, &[Key::Interrupt]), vec![Effect::Quit(Outcome::Quit)], "{screen:?}");
        }
        let mut w = flashing();
        assert!(keys(&mut w, &[Key::Char('q')]).is_empty());
    }

    #[test]
    fn help_opens_with_question_mark_and_the_next_key_only_closes_it() {
        let mut w = with_images();
        keys(&mut w, &[Key::Char('?')]);
        assert!(w.help);
        assert!(keys(&mut w, &[Key::Char('q')]).is_empty());
        assert!(!w.help);
        assert_eq!(w.screen, Screen::Image);
    }

    #[test]
    fn ctrl_c_with_help_open_closes_it_and_still_acts() {
        let mut w = flashing();
        keys(&mut w, &[Key::Char('?')]);
        assert!(keys(&mut w, &[Key::Interrupt]).is_empty());
        assert!(!w.help);
        assert!(w.flashing.as_ref().is_some_and(|f| f.asking));
    }

    #[test]
    fn ctrl_c_while_flashing_asks_and_n_keeps_writing() {
        let mut w = flashing();
        assert!(keys(&mut w, &[Key::Interrupt]).is_empty());
        assert!(w.flashing.as_ref().is_some_and(|f| f.asking));
        assert!(keys(&mut w, &[Key::Char('n')]).is_empty());
        assert!(w.flashing.as_ref().is_some_and(|f| !f.asking && !f.cancelling));
    }

    #[test]
    fn ctrl_c_then_y_or_a_second_ctrl_c_cancels_the_flash() {
        for second in [Key::Char('y'), Key::Interrupt] {
            let mut w = flashing();
            let effects = keys(&mut w, &[Key::Interrupt, second]);
            assert_eq!(effects, vec![Effect::CancelFlash], "{second:?}");
            assert!(w.flashing.as_ref().is_some_and(|f| f.cancelling));
            // Further keys do nothing until the engine stops.
            assert!(keys(&mut w, &[Key::Interrupt, Key::Char('y')]).is_empty());
        }
        let mut w = flashing();
        assert_eq!(w.handle(Event::Interrupt), vec![]);
        assert_eq!(w.handle(Event::Line("y".into())), vec![Effect::CancelFlash]);
    }

    #[test]
    fn progress_is_kept_for_the_display() {
        let mut w = flashing();
        let p = Progress {
            phase: Phase::Writing,
            bytes_written: 5,
            total_bytes: Some(10),
            rate: 1.0,
            eta_seconds: Some(5.0),
        };
        w.handle(Event::Progress(p));
        assert_eq!(w.flashing.as_ref().and_then(|f| f.progress.as_ref()).map(|p| p.bytes_written), Some(5));
    }

    #[test]
    fn a_good_flash_offers_reboot_first_and_enter_reboots() {
        let mut w = flashing();
        w.handle(Event::Finished(Ok(report())));
        assert_eq!((w.screen, w.done_cursor), (Screen::Done, 0));
        assert_eq!(keys(&mut w, &[Key::Enter]), vec![Effect::Reboot]);
        w.handle(Event::RebootFailed("no systemd".into()));
        assert!(w.message().is_some_and(|m| m.error && m.text.contains("no systemd")));
        assert_eq!(keys(&mut w, &[Key::Char('3'), Key::Enter]), vec![Effect::Quit(Outcome::Quit)]);
    }

    #[test]
    fn the_done_menu_offers_power_off_as_its_fourth_item() {
        let mut w = flashing();
        w.handle(Event::Finished(Ok(report())));
        assert_eq!(keys(&mut w, &[Key::Char('4'), Key::Enter]), vec![Effect::PowerOff]);
    }

    #[test]
    fn a_failed_flash_offers_going_back_first() {
        let mut w = flashing();
        let failure = FlashFailure { kind: ErrorKind::Failed, message: "write error".into() };
        w.handle(Event::Finished(Err(failure)));
        assert_eq!((w.screen, w.done_cursor), (Screen::Done, 1));
        assert!(matches!(&keys(&mut w, &[Key::Enter])[..], [Effect::ScanDisks { .. }]));
    }

    #[test]
    fn stop_while_flashing_cancels_then_quits_when_the_engine_has_stopped() {
        let mut w = flashing();
        assert_eq!(w.handle(Event::Stop(Outcome::Interrupted)), vec![Effect::CancelFlash]);
        let failure = FlashFailure { kind: ErrorKind::Cancelled, message: "cancelled".into() };
        assert_eq!(w.handle(Event::Finished(Err(failure))), vec![Effect::Quit(Outcome::Interrupted)]);
        let mut w = with_images();
        assert_eq!(w.handle(Event::Stop(Outcome::Quit)), vec![Effect::Quit(Outcome::Quit)]);
    }

    #[test]
    fn lines_drive_every_screen_on_a_dumb_terminal() {
        let mut w = with_images();
        assert!(w.handle(Event::Line(String::new())).is_empty());
        assert!(
            matches!(&w.handle(Event::Line(" 2 ".into()))[..], [Effect::ScanDisks { image, .. }] if image.name == "b.img")
        );
        w.handle(Event::Disks {
            generation: w.generation,
            result: Ok(DiskScan { image_size: None, disks: vec![disk("loop1", None, false)] }),
        });
        w.handle(Event::Line("1".into()));
        assert_eq!(w.screen, Screen::Confirm);
        assert!(w.handle(Event::Line("y".into())).is_empty());
        assert!(matches!(&w.handle(Event::Line("yes".into()))[..], [Effect::StartFlash(_)]));
        w.handle(Event::Finished(Ok(report())));
        assert_eq!(w.handle(Event::Line("quit".into())), vec![Effect::Quit(Outcome::Quit)]);
        let mut w = with_images();
        w.handle(Event::Line("nonsense".into()));
        assert!(w.message().is_some_and(|m| m.error && m.text.contains("unrecognised")));
        w.handle(Event::Line("back".into()));
        assert_eq!(w.screen, Screen::Source);
    }

    #[test]
    fn a_custom_catalog_is_typed_in_and_loaded() {
        let (mut w, _) = Wizard::new(setup(None));
        w.handle(Event::Images { generation: 1, result: Ok(Vec::new()) });
        keys(&mut w, &[Key::Char('3'), Key::Enter]);
        assert_eq!(w.source_input.as_deref(), Some(""));
        // Letters that are commands elsewhere are text here.
        typed(&mut w, "http://srv/bq");
        keys(&mut w, &[Key::Backspace, Key::Backspace]);
        typed(&mut w, "c.toml");
        let effects = keys(&mut w, &[Key::Enter]);
        let source = SourceChoice::Catalog("http://srv/c.toml".into());
        assert!(matches!(&effects[..], [Effect::LoadImages { source: s, .. }] if *s == source));
        // Esc and an empty entry both close the field without loading.
        let (mut w, _) = Wizard::new(setup(None));
        w.handle(Event::Images { generation: 1, result: Ok(Vec::new()) });
        keys(&mut w, &[Key::Char('3'), Key::Enter, Key::Char('x'), Key::Esc]);
        assert_eq!((w.source_input.as_deref(), w.screen), (None, Screen::Source));
        assert!(keys(&mut w, &[Key::Enter, Key::Enter]).is_empty());
        assert_eq!(w.source_input, None);
        // On a dumb terminal the next line is the text.
        keys(&mut w, &[Key::Enter]);
        let effects = w.handle(Event::Line("/srv/catalog.toml".into()));
        assert!(
            matches!(&effects[..], [Effect::LoadImages { source: SourceChoice::Catalog(c), .. }] if c == "/srv/catalog.toml")
        );
    }

    #[test]
    fn the_default_catalog_is_offered() {
        let (mut w, _) = Wizard::new(setup(None));
        w.handle(Event::Images { generation: 1, result: Ok(Vec::new()) });
        let effects = keys(&mut w, &[Key::Down, Key::Enter]);
        let source = SourceChoice::Catalog("https://example.org/catalog.toml".into());
        assert!(matches!(&effects[..], [Effect::LoadImages { source: s, .. }] if *s == source));
    }

    #[test]
    fn disks_that_hold_data_are_told_apart_from_blank_ones() {
        assert!(!disk("a", None, true).holds_data());
        assert!(disk("a", None, false).holds_data());
        let mut unread = disk("a", None, true);
        unread.contents = Contents::Unreadable("I/O error".into());
        assert!(unread.holds_data());
        let mut partitioned = disk("a", None, true);
        partitioned.disk.partitions.push(Partition {
            name: "a1".into(),
            path: "/dev/a1".into(),
            size_bytes: 1,
            mountpoints: vec![],
        });
        assert!(partitioned.holds_data());
    }
}
