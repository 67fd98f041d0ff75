//! Drawing the wizard: its state becomes a [`Frame`] sized to the terminal.
//!
//! A frame has a header (title, steps, banner), a body (the screen's list or text, scrolled to
//! keep the highlighted row in view), and a footer (message, keys, prompt). On a terminal with
//! cursor addressing the footer sits on the bottom rows; on a dumb terminal the parts follow
//! each other as plain lines and nothing is padded. A terminal too small for a part drops it,
//! least useful first, and never makes this code fail. This module reads state and draws; it
//! changes nothing.

use super::backend::{Contents, DiskRow, FlashResult, SourceChoice};
use super::caps::Caps;
use super::frame::{Frame, Line, Style};
use super::state::{DoneItem, Flashing, Loading, Screen, SourceItem, Wizard};
use super::table::{self, Column};
use crate::catalog::Entry;
use crate::disk::human_size;
use crate::flash::Phase;
use crate::image::{PartitionTable, TableKind};

/// The terminal's size in columns and rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// Columns.
    pub cols: usize,
    /// Rows.
    pub rows: usize,
}

/// The screen parts before they are placed.
struct Parts {
    header: Vec<Line>,
    body: Vec<Line>,
    /// The body row that must stay visible (the highlighted one).
    focus: Option<usize>,
    /// The feedback line, wrapped to the width.
    message: Vec<Line>,
    hints: Line,
    /// The prompt row, and the column where the cursor rests on it.
    prompt: (Line, usize),
    /// The body ends in a line that changes all the time (progress); on a dumb terminal it
    /// goes last so it can be rewritten in place, and there is no prompt.
    live: bool,
}

/// Glyphs that differ between UTF-8 and ASCII terminals.
struct Glyphs {
    marker: &'static str,
    filled: char,
    empty: char,
    ellipsis: char,
    arrows: &'static str,
    sep: &'static str,
}

impl Glyphs {
    fn for_caps(caps: Caps) -> Glyphs {
        if caps.unicode {
            Glyphs {
                marker: "▶ ", filled: '█', empty: '░', ellipsis: '…', arrows: "↑↓", sep: " › "
            }
        } else {
            Glyphs { marker: "> ", filled: '#', empty: '-', ellipsis: '~', arrows: "Up/Dn", sep: " > " }
        }
    }
}

/// Draws `w` for a terminal of `size` with `caps`.
pub fn frame(w: &Wizard, size: Size, caps: Caps) -> Frame {
    let g = Glyphs::for_caps(caps);
    let parts = parts(w, size.cols, caps, &g);
    if caps.addressing {
        place(parts, size)
    } else {
        sequence(parts)
    }
}

/// Bottom-anchored placement for a terminal with cursor addressing.
fn place(p: Parts, size: Size) -> Frame {
    let h = size.rows;
    if h == 0 || size.cols == 0 {
        return Frame::default();
    }
    // What fits, from most to least needed: prompt, message, title, hints, body, the rest.
    let message = match h {
        0..=2 => 0,
        3..=9 => p.message.len().min(1),
        _ => p.message.len().min(3),
    };
    let title = usize::from(h >= 2);
    let hints = usize::from(h >= 5);
    let rest_header = if h >= 12 { p.header.len().saturating_sub(1) } else { 0 };
    let gap = usize::from(h >= 10);
    let body_rows = h.saturating_sub(1 + message + title + hints + rest_header + gap);
    let mut lines: Vec<Line> = p.header.into_iter().take(title + rest_header).collect();
    lines.extend(std::iter::repeat_n(Line::blank(), gap));
    let skip = match p.focus {
        Some(f) if f >= body_rows => f + 1 - body_rows,
        _ => 0,
    };
    let body: Vec<Line> = p.body.into_iter().skip(skip).take(body_rows).collect();
    let pad = body_rows - body.len();
    lines.extend(body);
    lines.extend(std::iter::repeat_n(Line::blank(), pad));
    lines.extend(p.message.into_iter().take(message));
    if hints == 1 {
        lines.push(p.hints);
    }
    let row = lines.len();
    lines.push(p.prompt.0);
    Frame { lines, cursor: Some((row, p.prompt.1.min(size.cols.saturating_sub(1)))) }
}

/// Plain sequential lines for a dumb terminal.
fn sequence(p: Parts) -> Frame {
    let mut lines = p.header;
    lines.push(Line::blank());
    if p.live {
        lines.extend(p.message);
        lines.push(p.hints);
        lines.extend(p.body);
    } else {
        lines.extend(p.body);
        lines.extend(p.message);
        lines.push(p.hints);
        lines.push(p.prompt.0);
    }
    Frame { lines, cursor: None }
}

fn parts(w: &Wizard, cols: usize, caps: Caps, g: &Glyphs) -> Parts {
    let (body, focus) = if w.help { (help(caps), None) } else { body(w, cols, caps, g) };
    Parts {
        header: header(w, cols, g),
        body,
        focus,
        message: match &w.message {
            Some(m) => paragraph(&m.text, cols, 1, if m.error { Style::Error } else { Style::Good }),
            None => Vec::new(),
        },
        hints: Line::styled(hints(w, caps, g), Style::Plain),
        prompt: prompt(w, cols, g),
        live: w.screen == Screen::Flashing && !w.help,
    }
}

fn title(screen: Screen) -> &'static str {
    match screen {
        Screen::Source => "Pick an image source",
        Screen::Image => "Pick an image to flash",
        Screen::Disk => "Pick a target disk",
        Screen::Confirm => "Confirm the flash",
        Screen::Flashing => "Flashing",
        Screen::Done => "Finished",
    }
}

fn header(w: &Wizard, cols: usize, g: &Glyphs) -> Vec<Line> {
    let mut lines =
        vec![Line::styled(format!(" bty {} - {} ", crate::VERSION, title(w.screen)), Style::Title)];
    let crumbs = |named_all: bool| {
        let mut steps = Line::plain(" ");
        for (i, s) in Screen::ALL.iter().enumerate() {
            if i > 0 {
                steps = steps.push(g.sep, Style::Plain);
            }
            steps = match (*s == w.screen, named_all) {
                (true, _) => steps.push(format!("[{}.{}]", i + 1, s.name()), Style::Bold),
                (false, true) => steps.push(format!("{}.{}", i + 1, s.name()), Style::Plain),
                (false, false) => steps.push((i + 1).to_string(), Style::Plain),
            };
        }
        steps
    };
    // On a narrow terminal only the current step keeps its name.
    let full = crumbs(true);
    lines.push(if full.width() <= cols { full } else { crumbs(false) });
    if let Some(b) = &w.setup.banner {
        lines.push(Line::styled(format!(" {b}"), Style::Warn));
    }
    lines
}

fn hints(w: &Wizard, caps: Caps, g: &Glyphs) -> String {
    if w.help {
        return " any key closes this help".into();
    }
    if w.source_input.is_some() {
        return " type a path or URL, Enter loads it, Esc cancels".into();
    }
    let n = w.list_len();
    let pick = match (caps.addressing, n) {
        (_, 0) => String::new(),
        (true, _) => format!("{} move  1-{n} Enter pick  ", g.arrows),
        (false, _) => format!("type 1-{n} and Enter to pick;  "),
    };
    let s = match w.screen {
        Screen::Source => format!("{pick}q quit  ? help"),
        Screen::Image | Screen::Disk => format!("{pick}b back  r rescan  q quit  ? help"),
        Screen::Confirm => {
            let word = if w.disk.as_ref().is_some_and(|d| !d.holds_data()) { "y" } else { "yes" };
            format!("{word} Enter flash  v verify  b back  q quit  ? help")
        }
        Screen::Flashing => match &w.flashing {
            Some(Flashing { asking: true, .. }) => "y cancel the flash  n keep writing".to_string(),
            _ if caps.addressing => "Ctrl+C cancel (asks first)".to_string(),
            _ => "Ctrl+C cancels (asks first)".to_string(),
        },
        Screen::Done => format!("{pick}b back  q quit  ? help"),
    };
    format!(" {s}")
}

fn prompt(w: &Wizard, cols: usize, g: &Glyphs) -> (Line, usize) {
    let mut text = match (&w.source_input, w.screen) {
        (Some(t), _) => format!("Catalog path or URL: {t}"),
        (None, Screen::Confirm) => format!("Confirm: {}", w.typed),
        (None, Screen::Flashing) => String::new(),
        (None, _) => format!("> {}", w.typed),
    };
    // A long URL being typed keeps its end, where the typing happens, in view.
    let room = cols.saturating_sub(2);
    let len = text.chars().count();
    if len > room && room > 0 {
        text = std::iter::once(g.ellipsis).chain(text.chars().skip(len - room + 1)).collect();
    }
    let col = text.chars().count();
    (Line::plain(text), col)
}

/// The body of the current screen, and the row to keep in view.
fn body(w: &Wizard, cols: usize, caps: Caps, g: &Glyphs) -> (Vec<Line>, Option<usize>) {
    match w.screen {
        Screen::Source => source_body(w, g),
        Screen::Image => image_body(w, cols, g),
        Screen::Disk => disk_body(w, cols, g),
        Screen::Confirm => (confirm_body(w), None),
        Screen::Flashing => (flashing_body(w, cols, caps, g), None),
        Screen::Done => done_body(w, cols, g),
    }
}

/// A list row: the marker when highlighted, then the text, in the row's style.
fn row(text: &str, selected: bool, greyed: bool, g: &Glyphs) -> Line {
    let marker = if selected { g.marker } else { "  " };
    let style = match (selected, greyed) {
        (true, _) => Style::Selected,
        (false, true) => Style::Greyed,
        (false, false) => Style::Plain,
    };
    Line::plain(format!(" {marker}")).push(text, style)
}

fn source_body(w: &Wizard, g: &Glyphs) -> (Vec<Line>, Option<usize>) {
    let mut lines = vec![Line::plain(" Where should the images come from?"), Line::blank()];
    let first = lines.len();
    for (i, item) in w.sources.iter().enumerate() {
        let label = match item {
            SourceItem::Given(c) => format!("Catalog {c}"),
            SourceItem::Local => format!("Local images in {}", w.setup.image_root),
            SourceItem::Default => format!("Default catalog {}", w.setup.default_catalog),
            SourceItem::Custom => "Another catalog: type a path or URL".to_string(),
        };
        lines.push(row(&format!("{}  {label}", i + 1), i == w.source_cursor, false, g));
    }
    (lines, Some(first + w.source_cursor))
}

/// Where an image's bytes come from, in a few words.
fn origin(e: &Entry) -> String {
    let src = e.src.as_str();
    for scheme in ["https://", "http://", "oras://"] {
        if let Some(rest) = src.strip_prefix(scheme) {
            let host = rest.split('/').next().unwrap_or(rest);
            return format!("{}{host}", if scheme == "oras://" { "oras " } else { "" });
        }
    }
    "local".to_string()
}

fn source_label(w: &Wizard) -> String {
    match &w.source {
        Some(SourceChoice::Catalog(c)) => format!("catalog {c} (and {})", w.setup.image_root),
        _ => w.setup.image_root.clone(),
    }
}

fn image_body(w: &Wizard, cols: usize, g: &Glyphs) -> (Vec<Line>, Option<usize>) {
    let mut lines = vec![Line::plain(format!(" Images from {}", source_label(w)))];
    let images = match &w.images {
        Loading::Ready(images) => images,
        Loading::Pending => {
            lines.push(Line::blank());
            lines.push(Line::plain(" Loading images..."));
            return (lines, None);
        }
        Loading::Idle => return (lines, None),
    };
    lines.push(Line::blank());
    if images.is_empty() {
        lines.push(Line::plain(
            " No images found. Put images in the image root, or go back (b) and pick a catalog.",
        ));
        return (lines, None);
    }
    const COLS: [Column; 6] = [
        Column { header: "#", drop_order: 0, flex: false },
        Column { header: "Name", drop_order: 0, flex: true },
        Column { header: "Size", drop_order: 2, flex: false },
        Column { header: "Format", drop_order: 3, flex: false },
        Column { header: "Arch", drop_order: 4, flex: false },
        Column { header: "From", drop_order: 5, flex: false },
    ];
    let rows: Vec<Vec<String>> = images
        .iter()
        .enumerate()
        .map(|(i, e)| {
            vec![
                (i + 1).to_string(),
                e.name.clone(),
                e.size_bytes.map(human_size).unwrap_or_else(|| "?".into()),
                e.format.clone().unwrap_or_else(|| "?".into()),
                e.arch.clone().unwrap_or_else(|| "-".into()),
                origin(e),
            ]
        })
        .collect();
    let t = table::layout(&COLS, &rows, cols.saturating_sub(3), g.ellipsis);
    lines.push(Line::styled(format!("   {}", t.header), Style::Bold));
    let first = lines.len();
    for (i, text) in t.rows.iter().enumerate() {
        lines.push(row(text, i == w.image_cursor, false, g));
    }
    // The highlighted image's description and full source, which the table has no room for.
    if let Some(e) = images.get(w.image_cursor) {
        lines.push(Line::blank());
        if let Some(d) = &e.description {
            lines.extend(paragraph(d, cols, 1, Style::Plain));
        }
        lines.extend(paragraph(&e.src, cols, 1, Style::Greyed));
    }
    (lines, Some(first + w.image_cursor))
}

fn disk_body(w: &Wizard, cols: usize, g: &Glyphs) -> (Vec<Line>, Option<usize>) {
    let mut lines = Vec::new();
    if let Some(image) = &w.image {
        lines.push(Line::plain(format!(" Image: {}", image.name)));
    }
    let scan = match &w.disks {
        Loading::Ready(scan) => scan,
        Loading::Pending | Loading::Idle => {
            lines.push(Line::blank());
            lines.push(Line::plain(" Looking for disks..."));
            return (lines, None);
        }
    };
    lines.push(Line::blank());
    if scan.disks.is_empty() {
        lines.push(Line::plain(" No disks found. Attach one and press r to rescan."));
        return (lines, None);
    }
    const COLS: [Column; 6] = [
        Column { header: "#", drop_order: 0, flex: false },
        Column { header: "Path", drop_order: 0, flex: false },
        Column { header: "Size", drop_order: 0, flex: false },
        Column { header: "Model", drop_order: 3, flex: true },
        Column { header: "Bus", drop_order: 1, flex: false },
        Column { header: "Serial", drop_order: 2, flex: false },
    ];
    let rows: Vec<Vec<String>> = scan
        .disks
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let dash = || "-".to_string();
            vec![
                (i + 1).to_string(),
                d.disk.path.display().to_string(),
                human_size(d.disk.size_bytes),
                d.disk.model.clone().unwrap_or_else(dash),
                transport(d),
                d.disk.serial.clone().unwrap_or_else(dash),
            ]
        })
        .collect();
    let t = table::layout(&COLS, &rows, cols.saturating_sub(3), g.ellipsis);
    lines.push(Line::styled(format!("   {}", t.header), Style::Bold));
    let mut focus = None;
    for (i, (text, d)) in t.rows.iter().zip(&scan.disks).enumerate() {
        if i == w.disk_cursor {
            focus = Some(lines.len());
        }
        lines.push(row(text, i == w.disk_cursor, d.refusal.is_some(), g));
        if let Some(why) = &d.refusal {
            lines.extend(paragraph(&format!("cannot use: {why}"), cols, 6, Style::Greyed));
        }
    }
    (lines, focus)
}

fn transport(d: &DiskRow) -> String {
    d.disk.transport.name().to_string()
}

fn confirm_body(w: &Wizard) -> Vec<Line> {
    let (Some(image), Some(row)) = (&w.image, &w.disk) else { return Vec::new() };
    let disk = &row.disk;
    let path = disk.path.display().to_string();
    let mut lines = vec![Line::plain(format!(" Image   {}", image.name))];
    let stored = image.size_bytes.map(human_size).unwrap_or_else(|| "size unknown".into());
    let format = image.format.clone().unwrap_or_else(|| "format detected when read".into());
    lines.push(Line::plain(format!("         {format}, {stored}, from {}", image.src)));
    let model =
        [disk.vendor.as_deref(), disk.model.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
    lines.push(Line::plain(format!(" Target  {path}  {}  {model}", human_size(disk.size_bytes))));
    if let Some(serial) = &disk.serial {
        lines.push(Line::plain(format!("         serial {serial}, {}", transport(row))));
    }
    lines.extend(lost_lines(row));
    let image_size = match &w.disks {
        Loading::Ready(scan) => scan.image_size,
        _ => None,
    };
    lines.push(match image_size {
        Some(n) => Line::plain(format!(
            " Size    the image needs {} of the disk's {}: it fits",
            human_size(n),
            human_size(disk.size_bytes)
        )),
        None => Line::plain(format!(
            " Size    the written size is known only while decoding; the disk has {}",
            human_size(disk.size_bytes)
        )),
    });
    lines.push(Line::plain(format!(
        " Verify  {}",
        if w.verify {
            "on: read the disk back after writing (v turns off)"
        } else {
            "off (v turns on read-back)"
        }
    )));
    lines.push(Line::blank());
    lines.push(if row.holds_data() {
        Line::styled(format!(" Type yes and press Enter to ERASE {path} and flash it."), Style::Warn)
    } else {
        Line::plain(format!(" Type y and press Enter to flash {path}."))
    });
    lines
}

/// What flashing the disk destroys.
fn lost_lines(row: &DiskRow) -> Vec<Line> {
    let disk = &row.disk;
    let mut lines = Vec::new();
    if !disk.partitions.is_empty() {
        lines
            .push(Line::styled(format!(" Lost    all {} partition(s):", disk.partitions.len()), Style::Warn));
        for p in &disk.partitions {
            let mounted = if p.mountpoints.is_empty() {
                String::new()
            } else {
                format!(", mounted at {}", p.mountpoints.join(" "))
            };
            lines.push(Line::styled(
                format!("           {} ({}{mounted})", p.name, human_size(p.size_bytes)),
                Style::Warn,
            ));
        }
    } else if !disk.mountpoints.is_empty() {
        lines.push(Line::styled(
            format!(" Lost    the filesystem mounted at {}", disk.mountpoints.join(" ")),
            Style::Warn,
        ));
    } else {
        lines.extend(match &row.contents {
            Contents::Blank => {
                vec![Line::plain(" Lost    nothing found: no partitions, the first MiB is blank")]
            }
            Contents::Data => {
                vec![Line::styled(
                    " Lost    no partition table found, but the first MiB holds data",
                    Style::Warn,
                )]
            }
            Contents::Unreadable(why) => vec![Line::styled(format!(" Lost    unknown: {why}"), Style::Warn)],
            Contents::Table(t) => table_lines(t),
        });
    }
    lines
}

/// A partition table found on the disk, one partition per row.
fn table_lines(t: &PartitionTable) -> Vec<Line> {
    let kind = match t.kind {
        TableKind::Gpt => "GPT",
        TableKind::Mbr => "MBR",
    };
    let head = format!(" Lost    a {kind} partition table with {} partition(s):", t.partitions.len());
    let mut lines = vec![Line::styled(head, Style::Warn)];
    for p in &t.partitions {
        let what = p.type_name.map(str::to_string).unwrap_or_else(|| p.type_id.clone());
        let label = p.name.as_ref().map(|n| format!(" {n:?}")).unwrap_or_default();
        let text = format!("           {}  {what}  {}{label}", p.index, human_size(p.size));
        lines.push(Line::styled(text, Style::Warn));
    }
    lines
}

fn flashing_body(w: &Wizard, cols: usize, caps: Caps, g: &Glyphs) -> Vec<Line> {
    let (Some(image), Some(row), Some(f)) = (&w.image, &w.disk, &w.flashing) else { return Vec::new() };
    let mut lines = vec![Line::plain(format!(" Writing {} to {}", image.name, row.disk.path.display()))];
    let status = if f.cancelling {
        paragraph("Cancelling; waiting for the writer to stop...", cols, 1, Style::Warn)
    } else if f.asking {
        let path = row.disk.path.display();
        let question =
            format!("Cancel the flash? {path} will hold a partial image. y = cancel, n = keep writing");
        paragraph(&question, cols, 1, Style::Warn)
    } else {
        Vec::new()
    };
    let p = f.progress.as_ref();
    let phase = p.map(|p| phase_name(p.phase)).unwrap_or("starting");
    let done = p.map(|p| p.bytes_written).unwrap_or(0);
    let total = p.and_then(|p| p.total_bytes).filter(|&t| t > 0);
    let mut stats = human_size(done);
    if let Some(t) = total {
        stats += &format!(" of {}", human_size(t));
    }
    if let Some(p) = p {
        stats += &format!("  {:.1} MB/s", p.rate / 1e6);
        if let Some(eta) = p.eta_seconds {
            stats += &format!("  ETA {}", clock(eta));
        }
    }
    let percent = total.map(|t| (done.min(t) as f64 / t as f64 * 100.0).floor() as u32);
    if !caps.addressing {
        // One line that can be rewritten with a carriage return, last in the frame.
        lines.extend(status);
        let pct = percent.map(|p| format!(" {p}%")).unwrap_or_default();
        lines.push(Line::plain(format!(" {phase}{pct}  {stats}")));
        return lines;
    }
    lines.push(Line::blank());
    let bar_width = cols.saturating_sub(10).min(60);
    let filled = percent.map(|p| bar_width * p as usize / 100).unwrap_or(0);
    let bar: String = std::iter::repeat_n(g.filled, filled)
        .chain(std::iter::repeat_n(g.empty, bar_width - filled))
        .collect();
    let pct = percent.map(|p| format!("{p:>3}%")).unwrap_or_else(|| "   ?".into());
    lines.push(Line::plain(format!(" [{bar}] {pct}")));
    lines.push(Line::plain(format!(" {phase}: {stats}")));
    lines.push(Line::blank());
    lines.extend(status);
    lines
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Checking => "checking",
        Phase::Writing => "writing",
        Phase::Flushing => "flushing",
        Phase::Verifying => "verifying",
        Phase::Done => "done",
    }
}

fn done_body(w: &Wizard, cols: usize, g: &Glyphs) -> (Vec<Line>, Option<usize>) {
    let mut lines = result_lines(w, cols);
    lines.push(Line::blank());
    let first = lines.len();
    for (i, item) in DoneItem::ALL.iter().enumerate() {
        let label = match item {
            DoneItem::Reboot => "Reboot now",
            DoneItem::Again => "Back to the disk list (flash again)",
            DoneItem::Quit => "Quit",
            DoneItem::PowerOff => "Power off",
        };
        lines.push(row(&format!("{}  {label}", i + 1), i == w.done_cursor, false, g));
    }
    (lines, Some(first + w.done_cursor))
}

/// How the image's bytes reached the disk: written, zeroed without copying, found unchanged.
fn how_written(r: &crate::flash::FlashReport) -> String {
    let parts = [(r.bytes_written, "written"), (r.bytes_zeroed, "zeroed"), (r.bytes_unchanged, "unchanged")];
    let said: Vec<String> =
        parts.iter().filter(|(n, _)| *n > 0).map(|(n, what)| format!("{} {what}", human_size(*n))).collect();
    if said.is_empty() {
        "nothing to write".to_string()
    } else {
        said.join(", ")
    }
}

/// `text` wrapped to the width after `indent` spaces, every row indented alike.
fn paragraph(text: &str, cols: usize, indent: usize, style: Style) -> Vec<Line> {
    let pad = " ".repeat(indent);
    Line::wrapped(text, cols.saturating_sub(indent + 1), style)
        .into_iter()
        .map(|l| Line::plain(&pad).push(l.text(), style))
        .collect()
}

fn result_lines(w: &Wizard, cols: usize) -> Vec<Line> {
    let target = w.disk.as_ref().map(|d| d.disk.path.display().to_string()).unwrap_or_default();
    let name = w.image.as_ref().map(|i| i.name.as_str()).unwrap_or_default();
    let r: &FlashResult = match &w.result {
        Some(r) => r,
        None => return Vec::new(),
    };
    match r {
        Ok(report) => {
            let mut lines =
                vec![Line::styled(format!(" Flash complete: {name} is on {target}"), Style::Good)];
            let rate =
                if report.seconds > 0.0 { report.image_bytes as f64 / report.seconds / 1e6 } else { 0.0 };
            lines.push(Line::plain(format!(
                " {} in {:.1} s ({rate:.1} MB/s): {}",
                human_size(report.image_bytes),
                report.seconds,
                how_written(report)
            )));
            lines.push(Line::plain(format!(" Source sha256 {}", report.source_sha256)));
            lines.push(match w.image.as_ref().and_then(|i| i.sha256.as_ref()) {
                Some(_) => Line::styled(" Digest: the source matches its published sha256", Style::Good),
                None => Line::plain(" Digest: none was published to check against"),
            });
            lines.push(match report.verified {
                Some(true) => Line::styled(" Read-back verify: the disk matches the image", Style::Good),
                Some(false) => Line::styled(" Read-back verify: MISMATCH", Style::Error),
                None => Line::plain(" Read-back verify: not requested"),
            });
            lines
        }
        Err(f) => {
            let head = if f.kind == crate::ErrorKind::Cancelled {
                format!(" Flash cancelled: {target} holds a partial image")
            } else {
                format!(" Flash FAILED: {name} onto {target}")
            };
            let mut lines = vec![Line::styled(head, Style::Error)];
            lines.extend(paragraph(&f.message, cols, 1, Style::Plain));
            lines
        }
    }
}

fn help(caps: Caps) -> Vec<Line> {
    let mut lines = vec![Line::styled(" Keys", Style::Bold)];
    let rows = [
        ("Up/Down, k/j", "move the highlight"),
        ("1..9 then Enter", "pick by number (works on any terminal)"),
        ("Enter", "choose the highlighted row"),
        ("Esc or b", "back one screen"),
        ("r", "rescan images or disks"),
        ("v", "toggle read-back verify (confirm screen)"),
        ("q", "quit"),
        ("Ctrl+C", "cancel a running flash (asks first)"),
        ("Ctrl+L", "repaint the screen"),
        ("?", "this help"),
    ];
    for (k, what) in rows {
        lines.push(Line::plain(format!("   {k:<16} {what}")));
    }
    if !caps.addressing {
        lines.push(Line::plain(" On this terminal type the number or letter and press Enter."));
    }
    lines
}

/// Seconds as `m:ss` or `h:mm:ss`.
fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s / 3600 {
        0 => format!("{}:{:02}", s / 60, s % 60),
        h => format!("{h}:{:02}:{:02}", s / 60 % 60, s % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flash::Progress;
    use crate::tui::key::Key;
    use crate::tui::state::tests::{at_confirm, at_disks, entry, flashing, report, setup};
    use crate::tui::state::{Event, Wizard};

    const XTERM: Caps = Caps { addressing: true, unicode: true, colour: true };
    const VT100: Caps = Caps { addressing: true, unicode: false, colour: false };

    fn text(w: &Wizard, cols: usize, rows: usize, caps: Caps) -> String {
        frame(w, Size { cols, rows }, caps).text()
    }

    fn with_progress() -> Wizard {
        let mut w = flashing();
        w.handle(Event::Progress(Progress {
            phase: Phase::Writing,
            bytes_written: 3 << 20,
            total_bytes: Some(4 << 20),
            rate: 2_500_000.0,
            eta_seconds: Some(75.0),
        }));
        w
    }

    fn done() -> Wizard {
        let mut w = flashing();
        w.handle(Event::Finished(Ok(report())));
        w
    }

    fn every_screen() -> Vec<Wizard> {
        let (source, _) = Wizard::new(setup(Some("http://srv/catalog.toml")));
        let mut help = at_disks();
        help.handle(Event::Key(Key::Char('?')));
        vec![source, at_disks(), at_confirm('3'), with_progress(), done(), help]
    }

    #[test]
    fn no_screen_at_any_size_panics_or_overflows_the_rows() {
        for w in every_screen() {
            for (cols, rows) in
                [(0, 0), (1, 1), (3, 2), (10, 4), (20, 6), (40, 12), (80, 24), (200, 60), (500, 3)]
            {
                for caps in [XTERM, VT100, Caps::dumb()] {
                    let f = frame(&w, Size { cols, rows }, caps);
                    if caps.addressing {
                        assert!(f.lines.len() <= rows, "{:?} at {cols}x{rows}", w.screen());
                    }
                }
            }
        }
    }

    #[test]
    fn image_screen_shows_name_size_format_arch_and_origin() {
        let (mut w, _) = Wizard::new(setup(None));
        let mut remote = entry("remote.img.zst");
        remote.src = "https://images.example.org/x/remote.img.zst".into();
        remote.format = Some("img.zst".into());
        let mut local = entry("local.img");
        local.description = Some("Debian 12 for the lab".into());
        w.handle(Event::Images { generation: 1, result: Ok(vec![local, remote]) });
        let t = text(&w, 80, 24, XTERM);
        assert!(
            t.contains("Name") && t.contains("Size") && t.contains("Format") && t.contains("From"),
            "{t}"
        );
        assert!(
            t.contains("1  local.img")
                && t.contains("4.0 MiB")
                && t.contains("x86_64")
                && t.contains("local"),
            "{t}"
        );
        assert!(t.contains("img.zst") && t.contains("images.example.org"), "{t}");
        assert!(t.contains(" Debian 12 for the lab\n /images/local.img"), "the highlighted image:\n{t}");
        // At 40 columns the number, name and size remain.
        let t = text(&w, 40, 12, VT100);
        assert!(t.contains("2  remote.img.zst") && t.contains("4.0 MiB"), "{t}");
        assert!(t.contains(" 1 > [2.Image] > 3 > 4 > 5 > 6"), "{t}");
    }

    #[test]
    fn disk_screen_greys_refused_disks_and_says_why() {
        let w = at_disks();
        let f = frame(&w, Size { cols: 80, rows: 24 }, XTERM);
        let t = f.text();
        assert!(t.contains("/dev/sda") && t.contains("cannot use: holds the running system"), "{t}");
        assert!(
            t.contains("64.0 MiB") && t.contains("Test Disk") && t.contains("loop") && t.contains("SN-loop0"),
            "{t}"
        );
        let greyed = f.lines.iter().find(|l| l.text().contains("/dev/sda")).expect("sda row");
        assert!(greyed.spans.iter().any(|s| s.style == Style::Greyed), "{greyed:?}");
        // The highlighted row is the first eligible disk, marked so it shows without colour too.
        assert!(t.contains("▶ 2  /dev/loop0"), "{t}");
        assert!(text(&w, 80, 24, VT100).contains("> 2  /dev/loop0"));
    }

    #[test]
    fn confirm_screen_shows_image_target_loss_size_and_the_word_to_type() {
        let t = text(&at_confirm('3'), 80, 24, XTERM);
        for want in ["a.img", "/dev/loop1", "first MiB holds data", "fits", "Verify", "Type yes", "Confirm: "]
        {
            assert!(t.contains(want), "{want:?} missing:\n{t}");
        }
        let t = text(&at_confirm('2'), 80, 24, XTERM);
        assert!(t.contains("nothing found") && t.contains("Type y and press Enter"), "{t}");
    }

    #[test]
    fn confirm_screen_lists_the_partitions_found_on_the_disk() {
        let mut w = at_confirm('3');
        let table = PartitionTable {
            kind: TableKind::Gpt,
            sector_size: 512,
            disk_guid: None,
            partitions: vec![crate::image::Partition {
                index: 1,
                type_id: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b".into(),
                type_name: Some("EFI System"),
                start: 1 << 20,
                size: 512 << 20,
                name: Some("ESP".into()),
                guid: None,
                bootable: None,
            }],
            warnings: vec![],
        };
        if let Some(d) = w.disk.as_mut() {
            d.contents = Contents::Table(table);
        }
        let t = text(&w, 80, 24, XTERM);
        assert!(t.contains("a GPT partition table with 1 partition(s)"), "{t}");
        assert!(t.contains("1  EFI System  512.0 MiB \"ESP\""), "{t}");
    }

    #[test]
    fn flashing_screen_shows_bar_bytes_rate_eta_and_phase() {
        let t = text(&with_progress(), 80, 24, VT100);
        assert!(t.contains("[#") && t.contains(" 75%"), "{t}");
        assert!(t.contains("writing: 3.0 MiB of 4.0 MiB  2.5 MB/s  ETA 1:15"), "{t}");
        let mut asking = with_progress();
        asking.handle(Event::Key(Key::Interrupt));
        assert!(text(&asking, 80, 24, VT100).contains("Cancel the flash?"));
    }

    #[test]
    fn dumb_flashing_puts_the_progress_line_last_and_has_no_prompt() {
        let f = frame(&with_progress(), Size { cols: 80, rows: 24 }, Caps::dumb());
        assert_eq!(
            f.lines.last().map(Line::text),
            Some(" writing 75%  3.0 MiB of 4.0 MiB  2.5 MB/s  ETA 1:15".into())
        );
        assert_eq!(f.cursor, None);
    }

    #[test]
    fn done_screen_shows_result_digest_verify_and_the_menu() {
        let t = text(&done(), 80, 24, XTERM);
        for want in [
            "Flash complete: a.img is on /dev/loop1",
            "Source sha256 abab",
            "not requested",
            "1  Reboot now",
            "3  Quit",
        ] {
            assert!(t.contains(want), "{want:?} missing:\n{t}");
        }
    }

    #[test]
    fn the_highlighted_row_stays_visible_in_a_long_list() {
        let (mut w, _) = Wizard::new(setup(None));
        let images = (1..=50).map(|i| entry(&format!("image-{i}.img"))).collect();
        w.handle(Event::Images { generation: 1, result: Ok(images) });
        for _ in 0..40 {
            w.handle(Event::Key(Key::Down));
        }
        let t = text(&w, 80, 24, VT100);
        assert!(t.contains("> 41  image-41.img"), "{t}");
        assert!(!t.contains("image-1.img"), "{t}");
    }

    #[test]
    fn ascii_terminals_get_ascii_glyphs() {
        for w in every_screen() {
            let t = text(&w, 80, 24, VT100);
            assert!(t.is_ascii(), "{t}");
        }
    }

    #[test]
    fn the_prompt_is_on_the_bottom_row_with_the_cursor_after_typed_text() {
        let mut w = at_disks();
        w.handle(Event::Key(Key::Char('3')));
        let f = frame(&w, Size { cols: 80, rows: 24 }, XTERM);
        assert_eq!(f.lines.len(), 24);
        assert_eq!(f.lines[23].text(), "> 3");
        assert_eq!(f.cursor, Some((23, 3)));
    }

    #[test]
    fn a_long_typed_url_keeps_its_end_in_view() {
        let (mut w, _) = Wizard::new(setup(None));
        w.handle(Event::Images { generation: 1, result: Ok(Vec::new()) });
        w.handle(Event::Key(Key::Char('3')));
        w.handle(Event::Key(Key::Enter));
        for c in "http://bty-server.example.org:8080/catalog.toml".chars() {
            w.handle(Event::Key(Key::Char(c)));
        }
        let f = frame(&w, Size { cols: 40, rows: 12 }, VT100);
        let prompt = f.lines.last().map(Line::text).unwrap_or_default();
        assert!(
            prompt.starts_with('~') && prompt.ends_with("org:8080/catalog.toml") && prompt.len() == 38,
            "{prompt:?}"
        );
        assert_eq!(f.cursor, Some((11, 38)));
    }

    #[test]
    fn clock_reads_naturally() {
        assert_eq!(clock(75.0), "1:15");
        assert_eq!(clock(3725.0), "1:02:05");
    }
}
