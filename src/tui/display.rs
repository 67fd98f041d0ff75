//! Turning frames into terminal bytes, sending only what changed.
//!
//! With cursor addressing the display keeps the previous frame as lines and rewrites only the
//! rows that differ, each from its first changed column (cursor there, the rest of the text,
//! erase to end of line when it got shorter), which is what keeps a 9600-baud serial console
//! usable. It speaks a VT100 subset: `CUP`, `EL`, `ED` and SGR 0, 1, 7,
//! plus colours 31–33 and dim when colour is allowed. Without addressing (`TERM=dumb`) a frame is
//! printed as plain lines, and a frame that differs only in its last line rewrites that line
//! after a carriage return (the progress line). This module does not know about the wizard.

use super::caps::Caps;
use super::frame::{Frame, Line, Style};

/// The bytes-producing side of the screen, with memory of what the terminal shows.
#[derive(Debug)]
pub struct Display {
    caps: Caps,
    /// The rows as last painted, already fitted to the width.
    shown: Vec<Line>,
    /// The size `shown` was painted for; `None` forces a full repaint.
    shown_size: Option<(usize, usize)>,
    shown_cursor: Option<(usize, usize)>,
}

impl Display {
    /// A display that has painted nothing yet.
    pub fn new(caps: Caps) -> Display {
        Display { caps, shown: Vec::new(), shown_size: None, shown_cursor: None }
    }

    /// Forgets what the terminal shows, so the next paint repaints (or reprints) everything.
    pub fn invalidate(&mut self) {
        self.shown_size = None;
    }

    /// The bytes that make the terminal show `frame` at `cols`×`rows`.
    pub fn paint(&mut self, frame: &Frame, cols: usize, rows: usize) -> Vec<u8> {
        if self.caps.addressing {
            self.paint_addressed(frame, cols, rows)
        } else {
            self.print_lines(frame, cols)
        }
    }

    /// The bytes that leave the terminal tidy when the wizard ends: attributes reset, screen
    /// cleared, cursor home (or, on a dumb terminal, just a fresh line).
    pub fn leave(&mut self) -> Vec<u8> {
        self.invalidate();
        if self.caps.addressing {
            b"\x1b[0m\x1b[H\x1b[2J".to_vec()
        } else {
            b"\n".to_vec()
        }
    }

    fn paint_addressed(&mut self, frame: &Frame, cols: usize, rows: usize) -> Vec<u8> {
        let mut out = String::new();
        if self.shown_size != Some((cols, rows)) {
            out.push_str("\x1b[0m\x1b[H\x1b[2J");
            self.shown = vec![Line::blank(); rows];
            self.shown_size = Some((cols, rows));
            self.shown_cursor = None;
        }
        let ascii = !self.caps.unicode;
        for r in 0..rows {
            // The bottom-right cell is left alone: some terminals scroll when it is written.
            let width = if r + 1 == rows { cols.saturating_sub(1) } else { cols };
            let line = frame.lines.get(r).map(|l| l.fitted(width, ascii)).unwrap_or_default();
            if line != self.shown[r] {
                // Only from the first changed column on: a progress line changes a few cells,
                // and on a 9600-baud line every byte counts.
                let old = &self.shown[r];
                let start = first_difference(old, &line);
                out.push_str(&format!("\x1b[{};{}H", r + 1, start + 1));
                self.write_line(&mut out, &line.tail_from(start));
                if line.width() < old.width() {
                    out.push_str("\x1b[K");
                }
                self.shown[r] = line;
            }
        }
        let cursor = frame.cursor.filter(|&(r, _)| r < rows);
        if !out.is_empty() || cursor != self.shown_cursor {
            if let Some((r, c)) = cursor {
                out.push_str(&format!("\x1b[{};{}H", r + 1, c + 1));
            }
            self.shown_cursor = cursor;
        }
        out.into_bytes()
    }

    fn write_line(&self, out: &mut String, line: &Line) {
        for span in &line.spans {
            match self.sgr(span.style) {
                Some(sgr) => out.push_str(&format!("\x1b[0;{sgr}m{}\x1b[0m", span.text)),
                None => out.push_str(&span.text),
            }
        }
    }

    /// The SGR parameters for a style, or `None` for plain text.
    fn sgr(&self, style: Style) -> Option<&'static str> {
        let colour = self.caps.colour;
        match style {
            Style::Plain => None,
            Style::Bold => Some("1"),
            Style::Title => Some("1;7"),
            Style::Selected => Some("7"),
            Style::Greyed if colour => Some("2"),
            Style::Greyed => None,
            Style::Error if colour => Some("1;31"),
            Style::Good if colour => Some("1;32"),
            Style::Warn if colour => Some("1;33"),
            Style::Error | Style::Good | Style::Warn => Some("1"),
        }
    }

    fn print_lines(&mut self, frame: &Frame, cols: usize) -> Vec<u8> {
        // Trailing blanks are noise on a slow line, except on the prompt the user types after.
        let last = frame.lines.len().saturating_sub(1);
        let lines: Vec<Line> = frame
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let text = l.fitted(cols, true).text();
                Line::plain(if i == last { text.as_str() } else { text.trim_end() })
            })
            .collect();
        let fresh = self.shown_size.is_none();
        self.shown_size = Some((cols, 0));
        let previous = std::mem::replace(&mut self.shown, lines);
        let lines = &self.shown;
        if !fresh && previous == *lines {
            return Vec::new();
        }
        let only_last_changed = !fresh
            && previous.len() == lines.len()
            && !lines.is_empty()
            && previous[..lines.len() - 1] == lines[..lines.len() - 1];
        if only_last_changed {
            let old = previous.last().map(Line::width).unwrap_or(0);
            let new = lines.last().map(|l| l.text()).unwrap_or_default();
            let pad = " ".repeat(old.saturating_sub(new.chars().count()));
            return format!("\r{new}{pad}").into_bytes();
        }
        let text: Vec<String> = lines.iter().map(Line::text).collect();
        format!("\n{}", text.join("\n")).into_bytes()
    }
}

/// The first column where two rows differ in character or style.
fn first_difference(a: &Line, b: &Line) -> usize {
    let cells = |l: &Line| -> Vec<(char, Style)> {
        l.spans.iter().flat_map(|s| s.text.chars().map(move |c| (c, s.style))).collect()
    };
    let (a, b) = (cells(a), cells(b));
    a.iter().zip(&b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(rows: &[&str]) -> Frame {
        Frame { lines: rows.iter().map(Line::plain).collect(), cursor: Some((rows.len() - 1, 2)) }
    }

    fn vt100() -> Caps {
        Caps { addressing: true, unicode: false, colour: false }
    }

    #[test]
    fn first_paint_clears_and_draws_every_row() {
        let mut d = Display::new(vt100());
        let out = String::from_utf8(d.paint(&frame(&["one", "two"]), 20, 3)).unwrap();
        assert!(out.starts_with("\x1b[0m\x1b[H\x1b[2J"), "{out:?}");
        assert!(out.contains("\x1b[1;1Hone") && out.contains("\x1b[2;1Htwo"), "{out:?}");
        assert!(out.ends_with("\x1b[2;3H"), "{out:?}");
    }

    #[test]
    fn second_paint_rewrites_only_the_changed_row() {
        let mut d = Display::new(vt100());
        d.paint(&frame(&["one", "two", "three"]), 20, 4);
        let out = String::from_utf8(d.paint(&frame(&["one", "TWO", "three"]), 20, 4)).unwrap();
        assert_eq!(out, "\x1b[2;1HTWO\x1b[3;3H");
        assert!(d.paint(&frame(&["one", "TWO", "three"]), 20, 4).is_empty());
    }

    #[test]
    fn a_changed_row_is_rewritten_from_its_first_changed_column_and_erased_when_shorter() {
        let mut d = Display::new(vt100());
        d.paint(&frame(&["writing 10% 5.0 MB/s", "> "]), 40, 4);
        let out = String::from_utf8(d.paint(&frame(&["writing 20% 5.0 MB/s", "> "]), 40, 4)).unwrap();
        assert_eq!(out, "\x1b[1;9H20% 5.0 MB/s\x1b[2;3H");
        let out = String::from_utf8(d.paint(&frame(&["writing 20%", "> "]), 40, 4)).unwrap();
        assert_eq!(out, "\x1b[1;12H\x1b[K\x1b[2;3H");
        // A style change counts as a change.
        let styled = Frame { lines: vec![Line::styled("writing 20%", Style::Bold)], cursor: None };
        let out = String::from_utf8(d.paint(&styled, 40, 4)).unwrap();
        assert!(out.starts_with("\x1b[1;1H\x1b[0;1mwriting 20%"), "{out:?}");
    }

    #[test]
    fn a_resize_repaints_everything() {
        let mut d = Display::new(vt100());
        d.paint(&frame(&["one"]), 20, 4);
        let out = String::from_utf8(d.paint(&frame(&["one"]), 40, 4)).unwrap();
        assert!(out.contains("\x1b[2J") && out.contains("one"), "{out:?}");
    }

    #[test]
    fn rows_are_cut_to_the_width_and_the_bottom_right_cell_is_never_written() {
        let mut d = Display::new(vt100());
        let out = String::from_utf8(d.paint(&frame(&["abcdef", "ghijkl"]), 4, 2)).unwrap();
        assert!(out.contains("abcd") && out.contains("ghi") && !out.contains("ghij"), "{out:?}");
    }

    #[test]
    fn styles_become_sgr_and_without_colour_errors_are_bold() {
        let f = Frame { lines: vec![Line::styled("bad", Style::Error)], cursor: None };
        let mut mono = Display::new(vt100());
        assert!(String::from_utf8(mono.paint(&f, 10, 2)).unwrap().contains("\x1b[0;1mbad\x1b[0m"));
        let mut colour = Display::new(Caps { colour: true, ..vt100() });
        assert!(String::from_utf8(colour.paint(&f, 10, 2)).unwrap().contains("\x1b[0;1;31mbad\x1b[0m"));
    }

    #[test]
    fn tiny_and_zero_sizes_do_not_panic() {
        let mut d = Display::new(vt100());
        for (c, r) in [(0, 0), (1, 1), (0, 5), (5, 0), (2, 1)] {
            d.paint(&frame(&["hello", "world"]), c, r);
        }
    }

    #[test]
    fn dumb_output_has_no_escape_sequences_and_rewrites_a_changed_last_line_in_place() {
        let mut d = Display::new(Caps::dumb());
        let first = String::from_utf8(d.paint(&frame(&["menu", "writing 10%"]), 80, 24)).unwrap();
        assert_eq!(first, "\nmenu\nwriting 10%");
        let second = String::from_utf8(d.paint(&frame(&["menu", "writing 9%"]), 80, 24)).unwrap();
        assert_eq!(second, "\rwriting 9% ");
        let third = String::from_utf8(d.paint(&frame(&["other", "x"]), 80, 24)).unwrap();
        assert_eq!(third, "\nother\nx");
        assert!(!(first + &second + &third).contains('\x1b'));
    }

    #[test]
    fn dumb_output_prints_nothing_for_an_unchanged_frame_until_invalidated() {
        let mut d = Display::new(Caps::dumb());
        d.paint(&frame(&["menu", "> "]), 80, 24);
        assert!(d.paint(&frame(&["menu", "> "]), 80, 24).is_empty());
        d.invalidate();
        assert_eq!(d.paint(&frame(&["menu  ", "> "]), 80, 24), b"\nmenu\n> ");
    }
}
