//! What a name or an identifier from outside may contain.
//!
//! Control characters break logs and terminals; Unicode *format* characters
//! (general category Cf: zero-width space and joiners, bidirectional
//! overrides and isolates, the byte-order mark, the soft hyphen...) are
//! invisible, so `ada\u{200b}@example.com` looks like `ada@example.com` to the
//! operator who reads it and is another account to the vendor, and a bidi
//! override makes a name display as something else. Both are refused.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// True for a Unicode format character (general category Cf).
pub fn is_format(c: char) -> bool {
    !c.is_ascii() && c.general_category() == GeneralCategory::Format
}

/// Why `s` may not be used as a name, or None when it may: 1 to `max` bytes
/// once trimmed, no control or format characters.
pub(crate) fn name_problem(s: &str, max: usize) -> Option<String> {
    let t = s.trim();
    if t.is_empty() || t.len() > max || t.chars().any(char::is_control) {
        return Some(format!("must be 1 to {max} characters with no control characters"));
    }
    t.chars().find(|c| is_format(*c)).map(|c| {
        format!(
            "must not contain invisible formatting characters (found U+{:04X}; zero-width and bidirectional marks hide or reorder text)",
            c as u32
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_characters_are_the_invisible_ones() {
        for c in
            ['\u{200b}', '\u{200c}', '\u{200d}', '\u{200e}', '\u{202e}', '\u{2066}', '\u{feff}', '\u{ad}', '\u{e0001}']
        {
            assert!(is_format(c), "U+{:04X}", c as u32);
        }
        for c in ['a', ' ', '\u{e9}', '\u{3000}', '\u{1f600}', '-', '\''] {
            assert!(!is_format(c), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn names_say_which_character_is_hidden() {
        assert_eq!(name_problem("Ada", 255), None);
        assert_eq!(name_problem("Ad\u{e9}le O'Brien", 255), None);
        assert!(name_problem("Ada\u{202e}", 255).unwrap().contains("U+202E"));
        assert!(name_problem(" ", 255).unwrap().contains("1 to 255"));
        assert!(name_problem("a\nb", 255).unwrap().contains("control"));
        assert!(name_problem(&"x".repeat(256), 255).is_some());
    }
}
