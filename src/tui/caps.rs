//! What the terminal can show: cursor addressing, non-ASCII characters, colour.
//!
//! Decided once from the environment (`TERM`, `LC_ALL`/`LC_CTYPE`/`LANG`, `NO_COLOR`), because
//! a serial console or a Linux VT cannot be asked. The rules err toward the plainer choice: an
//! unknown locale means ASCII, `TERM=dumb` means no escape sequences at all. This module does
//! not draw; `display.rs` and `view.rs` consult it.

/// The terminal's capabilities as far as the wizard cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Cursor addressing works (every `TERM` but `dumb`); without it output is plain lines and
    /// input is read a line at a time.
    pub addressing: bool,
    /// Box and block characters may be drawn (a UTF-8 locale on a terminal with the glyphs).
    pub unicode: bool,
    /// SGR colours may be used (not with `NO_COLOR`, not on a VT100 or dumb terminal).
    pub colour: bool,
}

impl Caps {
    /// Capabilities from the process environment.
    pub fn from_env() -> Caps {
        Caps::from_vars(|name| std::env::var(name).ok())
    }

    /// Capabilities from an environment lookup (a parameter so tests need not touch the real one).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Caps {
        let term = var("TERM").unwrap_or_default();
        let term = term.as_str();
        let dumb = term.is_empty() || term == "dumb";
        // The first of these that is set and non-empty is the one that governs LC_CTYPE.
        let locale = ["LC_ALL", "LC_CTYPE", "LANG"].iter().find_map(|v| var(v).filter(|s| !s.is_empty()));
        let utf8 = locale.is_some_and(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("utf-8") || l.contains("utf8")
        });
        // The Linux VT's default font lacks most box-drawing glyphs, and a VT100 never had them.
        let plain_glyphs = dumb || term == "linux" || term.starts_with("vt100") || term.starts_with("vt102");
        let no_colour = var("NO_COLOR").is_some_and(|v| !v.is_empty());
        Caps {
            addressing: !dumb,
            unicode: utf8 && !plain_glyphs,
            colour: !no_colour && !dumb && !term.starts_with("vt1"),
        }
    }

    /// The plainest terminal: no addressing, ASCII, no colour.
    pub fn dumb() -> Caps {
        Caps { addressing: false, unicode: false, colour: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(vars: &[(&str, &str)]) -> Caps {
        Caps::from_vars(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn xterm_with_utf8_locale_gets_everything() {
        let c = caps(&[("TERM", "xterm-256color"), ("LANG", "en_US.UTF-8")]);
        assert_eq!(c, Caps { addressing: true, unicode: true, colour: true });
    }

    #[test]
    fn linux_vt_and_vt100_are_ascii_even_with_a_utf8_locale() {
        for term in ["linux", "vt100", "vt102"] {
            let c = caps(&[("TERM", term), ("LANG", "C.UTF-8")]);
            assert!(!c.unicode, "{term}");
            assert!(c.addressing, "{term}");
        }
        assert!(caps(&[("TERM", "linux")]).colour);
        assert!(!caps(&[("TERM", "vt100")]).colour);
    }

    #[test]
    fn dumb_or_missing_term_has_no_addressing_no_colour_no_unicode() {
        assert_eq!(caps(&[("TERM", "dumb"), ("LANG", "C.UTF-8")]), Caps::dumb());
        assert_eq!(caps(&[("LANG", "C.UTF-8")]), Caps::dumb());
    }

    #[test]
    fn locale_precedence_is_lc_all_then_lc_ctype_then_lang() {
        let t = ("TERM", "xterm");
        assert!(!caps(&[t, ("LC_ALL", "C"), ("LANG", "en_US.UTF-8")]).unicode);
        assert!(caps(&[t, ("LC_ALL", ""), ("LC_CTYPE", "de_DE.utf8"), ("LANG", "C")]).unicode);
        assert!(!caps(&[t]).unicode);
    }

    #[test]
    fn no_color_turns_colour_off_but_keeps_the_rest() {
        let c = caps(&[("TERM", "xterm"), ("LANG", "C.UTF-8"), ("NO_COLOR", "1")]);
        assert_eq!(c, Caps { addressing: true, unicode: true, colour: false });
    }
}
