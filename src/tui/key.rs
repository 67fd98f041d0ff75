//! Keys: the bytes a terminal sends, decoded into the few keys the wizard understands.
//!
//! The decoder knows the VT100/xterm cursor keys (`ESC [ A`, `ESC O A`, `ESC [ 5 ~` …), UTF-8
//! text, and the control characters that matter (Enter as CR, LF or CRLF, Backspace as DEL or
//! BS, Ctrl+C, Ctrl+L, Ctrl+U). A lone ESC is ambiguous until a short pause passes with nothing
//! after it, so the caller asks [`KeyDecoder::has_pending`] and calls [`KeyDecoder::flush`] when
//! that pause is over. Unknown escape sequences are swallowed whole, never shown as text. This
//! module does not read from anything; it only turns bytes into keys.

/// One key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// Cursor up.
    Up,
    /// Cursor down.
    Down,
    /// Page up.
    PageUp,
    /// Page down.
    PageDown,
    /// Home.
    Home,
    /// End.
    End,
    /// Enter / Return.
    Enter,
    /// Escape on its own.
    Esc,
    /// Backspace (DEL or BS).
    Backspace,
    /// Ctrl+C, which raw mode delivers as a byte instead of a signal.
    Interrupt,
    /// Ctrl+L: repaint the whole screen (a serial line may have garbled it).
    Redraw,
    /// Ctrl+U: clear the text being typed.
    KillLine,
    /// A printable character.
    Char(char),
}

/// Turns a byte stream into keys, holding back incomplete sequences until more bytes arrive.
#[derive(Debug, Default)]
pub struct KeyDecoder {
    pending: Vec<u8>,
    /// The last byte handled was CR, so an LF right after it is the same Enter (CRLF terminals).
    after_cr: bool,
}

/// Escape sequences longer than this are garbage; they are dropped instead of waited on.
const MAX_SEQUENCE: usize = 16;

impl KeyDecoder {
    /// A decoder with nothing pending.
    pub fn new() -> KeyDecoder {
        KeyDecoder::default()
    }

    /// Decodes `bytes` (appended to anything pending) into keys.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Key> {
        self.pending.extend_from_slice(bytes);
        let mut keys = Vec::new();
        let mut at = 0;
        while at < self.pending.len() {
            match decode_one(&self.pending[at..]) {
                Step::Key(key, used) => {
                    let lf_after_cr = key == Key::Enter && self.pending[at] == b'\n' && self.after_cr;
                    self.after_cr = self.pending[at] == b'\r';
                    if !lf_after_cr {
                        keys.push(key);
                    }
                    at += used;
                }
                Step::Skip(used) => {
                    self.after_cr = false;
                    at += used;
                }
                Step::Incomplete => break,
            }
        }
        self.pending.drain(..at);
        keys
    }

    /// Whether bytes are waiting for the rest of a sequence (a lone ESC, half a UTF-8 char).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Called after a pause with no more input: a waiting ESC was the Esc key; any other
    /// incomplete remainder is dropped.
    pub fn flush(&mut self) -> Vec<Key> {
        let was_escape = self.pending.first() == Some(&0x1b);
        self.pending.clear();
        self.after_cr = false;
        if was_escape {
            vec![Key::Esc]
        } else {
            Vec::new()
        }
    }
}

/// The result of looking at the start of the pending bytes.
enum Step {
    /// A key, and how many bytes it used.
    Key(Key, usize),
    /// Bytes that mean nothing to the wizard.
    Skip(usize),
    /// More bytes are needed to decide.
    Incomplete,
}

fn decode_one(b: &[u8]) -> Step {
    match b[0] {
        0x1b => decode_escape(b),
        b'\r' | b'\n' => Step::Key(Key::Enter, 1),
        0x7f | 0x08 => Step::Key(Key::Backspace, 1),
        0x03 => Step::Key(Key::Interrupt, 1),
        0x0c => Step::Key(Key::Redraw, 1),
        0x15 => Step::Key(Key::KillLine, 1),
        0x00..=0x1f => Step::Skip(1),
        0x20..=0x7e => Step::Key(Key::Char(b[0] as char), 1),
        lead => decode_utf8(b, lead),
    }
}

fn decode_escape(b: &[u8]) -> Step {
    let Some(&kind) = b.get(1) else { return Step::Incomplete };
    match kind {
        // CSI: parameters and intermediates, then one final byte in 0x40..=0x7e.
        b'[' => match b.iter().skip(2).position(|c| (0x40..=0x7e).contains(c)) {
            Some(i) => {
                let end = i + 2;
                let key = csi_key(&b[2..end], b[end]);
                key.map_or(Step::Skip(end + 1), |k| Step::Key(k, end + 1))
            }
            None if b.len() > MAX_SEQUENCE => Step::Skip(b.len()),
            None => Step::Incomplete,
        },
        // SS3: the "application cursor keys" form some terminals send for arrows.
        b'O' => match b.get(2) {
            Some(&c) => ss3_key(c).map_or(Step::Skip(3), |k| Step::Key(k, 3)),
            None => Step::Incomplete,
        },
        // ESC followed by anything else: the Esc key pressed just before another key.
        _ => Step::Key(Key::Esc, 1),
    }
}

fn csi_key(params: &[u8], last: u8) -> Option<Key> {
    match (params, last) {
        (_, b'A') => Some(Key::Up),
        (_, b'B') => Some(Key::Down),
        (_, b'H') => Some(Key::Home),
        (_, b'F') => Some(Key::End),
        (b"1" | b"7", b'~') => Some(Key::Home),
        (b"4" | b"8", b'~') => Some(Key::End),
        (b"5", b'~') => Some(Key::PageUp),
        (b"6", b'~') => Some(Key::PageDown),
        _ => None,
    }
}

fn ss3_key(c: u8) -> Option<Key> {
    match c {
        b'A' => Some(Key::Up),
        b'B' => Some(Key::Down),
        b'H' => Some(Key::Home),
        b'F' => Some(Key::End),
        // The keypad Enter in application mode.
        b'M' => Some(Key::Enter),
        _ => None,
    }
}

fn decode_utf8(b: &[u8], lead: u8) -> Step {
    let len = match lead {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        // A stray continuation byte or an invalid lead: not text.
        _ => return Step::Skip(1),
    };
    if b.len() < len {
        return Step::Incomplete;
    }
    match std::str::from_utf8(&b[..len]).ok().and_then(|s| s.chars().next()) {
        Some(c) if !c.is_control() => Step::Key(Key::Char(c), len),
        _ => Step::Skip(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bytes: &[u8], expected: &[Key]) {
        let mut d = KeyDecoder::new();
        let mut keys = d.feed(bytes);
        keys.extend(d.flush());
        assert_eq!(keys, expected, "decoding {bytes:?}");
    }

    #[test]
    fn cursor_keys_in_both_vt100_forms() {
        check(b"\x1b[A\x1b[B", &[Key::Up, Key::Down]);
        check(b"\x1bOA\x1bOB", &[Key::Up, Key::Down]);
        check(b"\x1b[5~\x1b[6~\x1b[1~\x1b[4~", &[Key::PageUp, Key::PageDown, Key::Home, Key::End]);
    }

    #[test]
    fn enter_as_cr_lf_or_crlf_is_one_key_each() {
        check(b"\r", &[Key::Enter]);
        check(b"\n", &[Key::Enter]);
        check(b"1\r\n2\r", &[Key::Char('1'), Key::Enter, Key::Char('2'), Key::Enter]);
        check(b"\n\n", &[Key::Enter, Key::Enter]);
    }

    #[test]
    fn crlf_split_across_reads_is_still_one_enter() {
        let mut d = KeyDecoder::new();
        assert_eq!(d.feed(b"\r"), vec![Key::Enter]);
        assert_eq!(d.feed(b"\n"), Vec::<Key>::new());
    }

    #[test]
    fn lone_escape_waits_for_the_pause_then_becomes_esc() {
        let mut d = KeyDecoder::new();
        assert_eq!(d.feed(b"\x1b"), Vec::<Key>::new());
        assert!(d.has_pending());
        assert_eq!(d.flush(), vec![Key::Esc]);
        assert!(!d.has_pending());
    }

    #[test]
    fn escape_sequence_split_across_reads_is_reassembled() {
        let mut d = KeyDecoder::new();
        assert_eq!(d.feed(b"\x1b["), Vec::<Key>::new());
        assert_eq!(d.feed(b"B"), vec![Key::Down]);
    }

    #[test]
    fn unknown_sequences_are_swallowed_not_typed() {
        check(b"\x1b[1;5C\x1b[200~x", &[Key::Char('x')]);
        check(b"\x1bOP", &[]);
    }

    #[test]
    fn escape_then_a_letter_is_esc_and_the_letter() {
        check(b"\x1bq", &[Key::Esc, Key::Char('q')]);
    }

    #[test]
    fn control_characters_map_to_their_keys() {
        check(
            b"\x7f\x08\x03\x0c\x15",
            &[Key::Backspace, Key::Backspace, Key::Interrupt, Key::Redraw, Key::KillLine],
        );
        check(b"\x01\x02", &[]);
    }

    #[test]
    fn utf8_text_is_decoded_even_when_split() {
        let mut d = KeyDecoder::new();
        let bytes = "é".as_bytes();
        assert_eq!(d.feed(&bytes[..1]), Vec::<Key>::new());
        assert_eq!(d.feed(&bytes[1..]), vec![Key::Char('é')]);
        check(b"\xff\x80a", &[Key::Char('a')]);
    }

    #[test]
    fn overlong_garbage_sequence_is_dropped_instead_of_waited_on() {
        let mut d = KeyDecoder::new();
        let mut bytes = b"\x1b[".to_vec();
        bytes.extend(std::iter::repeat_n(b'1', 20));
        assert_eq!(d.feed(&bytes), Vec::<Key>::new());
        assert!(!d.has_pending());
    }
}
