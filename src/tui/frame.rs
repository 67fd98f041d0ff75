//! A frame: what the screen should show, as styled lines, independent of any terminal.
//!
//! The view builds frames; the display turns them into bytes. Keeping the previous frame as
//! lines is what lets the display rewrite only the lines that changed. Text here is already
//! safe to print: [`Span::new`] replaces control characters (a catalog name could carry an
//! escape sequence) and, when asked, anything outside ASCII.

/// How a piece of text is emphasised; the display maps it to SGR attributes per capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Style {
    /// Normal text.
    #[default]
    Plain,
    /// Headings and the current breadcrumb step.
    Bold,
    /// The title bar.
    Title,
    /// The highlighted row.
    Selected,
    /// A row that cannot be picked, and its reason.
    Greyed,
    /// Something went wrong.
    Error,
    /// Something went well.
    Good,
    /// Needs attention (what will be lost).
    Warn,
}

/// A run of text in one style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The text, one terminal column per char.
    pub text: String,
    /// Its emphasis.
    pub style: Style,
}

impl Span {
    /// A span of `text`, with control characters replaced by `?`.
    pub fn new(text: impl AsRef<str>, style: Style) -> Span {
        let text = text.as_ref().chars().map(|c| if c.is_control() { '?' } else { c }).collect();
        Span { text, style }
    }
}

/// One screen row.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Line {
    /// The spans, left to right.
    pub spans: Vec<Span>,
}

impl Line {
    /// An empty row.
    pub fn blank() -> Line {
        Line::default()
    }

    /// A row of plain text.
    pub fn plain(text: impl AsRef<str>) -> Line {
        Line::styled(text, Style::Plain)
    }

    /// A row of text in one style.
    pub fn styled(text: impl AsRef<str>, style: Style) -> Line {
        Line { spans: vec![Span::new(text, style)] }
    }

    /// `text` broken into rows of at most `width` columns, at spaces where possible.
    pub fn wrapped(text: &str, width: usize, style: Style) -> Vec<Line> {
        let width = width.max(1);
        let mut rows: Vec<String> = Vec::new();
        let mut current = String::new();
        for word in text.split(' ') {
            let mut word: Vec<char> = word.chars().collect();
            let used = current.chars().count();
            if used > 0 && used + 1 + word.len() > width {
                rows.push(std::mem::take(&mut current));
            } else if used > 0 {
                current.push(' ');
            }
            // A word longer than a row is cut into row-sized pieces.
            while current.chars().count() + word.len() > width {
                let room = width - current.chars().count();
                current.extend(word.drain(..room));
                rows.push(std::mem::take(&mut current));
            }
            current.extend(word);
        }
        rows.push(current);
        rows.into_iter().map(|r| Line::styled(r, style)).collect()
    }

    /// Appends a span.
    pub fn push(mut self, text: impl AsRef<str>, style: Style) -> Line {
        self.spans.push(Span::new(text, style));
        self
    }

    /// The number of columns the text takes.
    pub fn width(&self) -> usize {
        self.spans.iter().map(|s| s.text.chars().count()).sum()
    }

    /// The part of the row from column `col` on.
    pub fn tail_from(&self, col: usize) -> Line {
        let mut skip = col;
        let mut spans = Vec::new();
        for span in &self.spans {
            let len = span.text.chars().count();
            if skip >= len {
                skip -= len;
                continue;
            }
            spans.push(Span { text: span.text.chars().skip(skip).collect(), style: span.style });
            skip = 0;
        }
        Line { spans }
    }

    /// The text without styles (for tests and plain output).
    pub fn text(&self) -> String {
        self.spans.iter().map(|s| s.text.as_str()).collect()
    }

    /// The row cut to `width` columns, with non-ASCII replaced when `ascii` is set, and runs of
    /// the same style merged (so equal-looking rows compare equal).
    pub fn fitted(&self, width: usize, ascii: bool) -> Line {
        let mut out: Vec<Span> = Vec::new();
        let mut left = width;
        for span in &self.spans {
            if left == 0 {
                break;
            }
            let text: String =
                span.text.chars().take(left).map(|c| if ascii && !c.is_ascii() { '?' } else { c }).collect();
            left -= text.chars().count();
            match out.last_mut() {
                Some(last) if last.style == span.style => last.text.push_str(&text),
                _ if text.is_empty() => {}
                _ => out.push(Span { text, style: span.style }),
            }
        }
        Line { spans: out }
    }
}

/// A whole screen's worth of rows and where the cursor should rest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    /// The rows, top first; fewer rows than the terminal has leaves the rest blank.
    pub lines: Vec<Line>,
    /// Row and column (0-based) where the cursor rests: after the text being typed.
    pub cursor: Option<(usize, usize)>,
}

impl Frame {
    /// The frame's text, one row per line, for tests.
    #[cfg(test)]
    pub fn text(&self) -> String {
        self.lines.iter().map(|l| l.text() + "\n").collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let line = Line::plain("evil\x1b[2Jname\x07");
        assert_eq!(line.text(), "evil?[2Jname?");
    }

    #[test]
    fn fitted_cuts_to_width_and_merges_equal_styles() {
        let line = Line::plain("abc").push("def", Style::Plain).push("ghi", Style::Bold);
        let fitted = line.fitted(7, false);
        assert_eq!(fitted.spans, vec![Span::new("abcdef", Style::Plain), Span::new("g", Style::Bold)]);
        assert_eq!(line.fitted(0, false), Line::blank());
    }

    #[test]
    fn wrapped_breaks_at_spaces_and_cuts_words_longer_than_a_row() {
        let rows: Vec<String> =
            Line::wrapped("loading catalog http://example.org/c.toml failed", 16, Style::Error)
                .iter()
                .map(Line::text)
                .collect();
        assert_eq!(rows, ["loading catalog", "http://example.o", "rg/c.toml failed"]);
        assert_eq!(Line::wrapped("", 0, Style::Plain).len(), 1);
    }

    #[test]
    fn fitted_replaces_non_ascii_in_ascii_mode() {
        assert_eq!(Line::plain("a█b").fitted(10, true).text(), "a?b");
        assert_eq!(Line::plain("a█b").fitted(10, false).text(), "a█b");
    }
}
