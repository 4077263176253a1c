//! Label values from outside (banners, nmap products and CPEs, VM/project/user and security-group
//! names, Greenbone names, config names) pass through here on their way into the exposition, so that
//! no value a scanned host or a tenant chooses can break a scrape or blow up a series.
//! prometheus-client (0.26) escapes `\`, `"` and line feed in both formats; this module bounds the
//! length and replaces control characters, which Prometheus accepts but which make series unreadable
//! and unsearchable (a NUL in a label is still a valid, invisible, different series).

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};
use std::borrow::Cow;

/// The longest label value written, in bytes; longer values are cut at a character boundary and end
/// with [`ELLIPSIS`]. A 1 MB banner makes a series of at most this much.
pub const MAX_LABEL_VALUE_BYTES: usize = 256;

/// What ends a cut value.
pub const ELLIPSIS: char = '…';

/// What a control character (C0, DEL, C1: carriage return, NUL, escape, …) becomes.
pub const REPLACEMENT: char = char::REPLACEMENT_CHARACTER;

/// The value as it is written: control characters replaced and at most
/// [`MAX_LABEL_VALUE_BYTES`] bytes long. Borrowed (no copy) when nothing needs changing, which is
/// every value the agent makes itself.
pub fn clean(value: &str) -> Cow<'_, str> {
    if value.len() <= MAX_LABEL_VALUE_BYTES && !value.chars().any(char::is_control) {
        return Cow::Borrowed(value);
    }
    // `fit`: how much of `out` can stay when the value turns out too long, leaving room for the
    // ellipsis. `out` never grows past the limit, however long the value.
    let budget = MAX_LABEL_VALUE_BYTES - ELLIPSIS.len_utf8();
    let mut out = String::with_capacity(value.len().min(MAX_LABEL_VALUE_BYTES));
    let mut fit = 0;
    for c in value.chars() {
        let c = if c.is_control() { REPLACEMENT } else { c };
        if out.len() + c.len_utf8() > MAX_LABEL_VALUE_BYTES {
            out.truncate(fit);
            out.push(ELLIPSIS);
            break;
        }
        out.push(c);
        if out.len() <= budget {
            fit = out.len();
        }
    }
    Cow::Owned(out)
}

/// A label set whose values are [`clean`]ed as they are written: the one way the collectors write
/// labels. Any `[(name, value); N]`, slice or vector of pairs can be wrapped.
pub struct Clean<'a, K, V>(pub &'a [(K, V)]);

impl<K: AsRef<str>, V: AsRef<str>> EncodeLabelSet for Clean<'_, K, V> {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        for (name, value) in self.0 {
            (name.as_ref(), clean(value.as_ref())).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_values_are_borrowed_unchanged() {
        for v in [
            "",
            "127.0.0.1",
            "9.2p1 Debian 2\"x",
            "back\\slash",
            "λ-vm",
            "a\u{FFFD}b",
        ] {
            assert!(matches!(clean(v), Cow::Borrowed(s) if s == v), "{v:?}");
        }
    }

    #[test]
    fn control_characters_are_replaced() {
        assert_eq!(
            clean("a\rb\0c\u{1b}[31m\u{7f}\u{85}"),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}[31m\u{FFFD}\u{FFFD}"
        );
        // Line feed is replaced too: prometheus-client would escape it, but a label that renders as
        // two lines in Grafana and alerts is still a hostile value.
        assert_eq!(clean("one\ntwo"), "one\u{FFFD}two");
    }

    #[test]
    fn long_values_are_cut_at_a_character_boundary_with_an_ellipsis() {
        let long = "x".repeat(10_000);
        let c = clean(&long);
        assert_eq!(c.len(), MAX_LABEL_VALUE_BYTES);
        assert!(c.ends_with(ELLIPSIS));
        // Multi-byte characters are never split.
        let wide = "€".repeat(1_000);
        let c = clean(&wide);
        assert!(c.len() <= MAX_LABEL_VALUE_BYTES, "{}", c.len());
        assert!(c.ends_with(ELLIPSIS));
        assert!(c.trim_end_matches(ELLIPSIS).chars().all(|ch| ch == '€'));
        // Exactly at the limit: whole, no ellipsis.
        let exact = "y".repeat(MAX_LABEL_VALUE_BYTES);
        assert_eq!(clean(&exact), exact);
        let just_over = "y".repeat(MAX_LABEL_VALUE_BYTES + 1);
        assert_eq!(clean(&just_over).chars().count(), MAX_LABEL_VALUE_BYTES - 2);
    }

    #[test]
    fn a_value_with_control_characters_at_the_limit_keeps_its_end() {
        // 256 bytes with a NUL inside: the NUL becomes 3 bytes, so the value no longer fits.
        let mut v = "z".repeat(MAX_LABEL_VALUE_BYTES - 1);
        v.insert(10, '\0');
        let c = clean(&v);
        assert!(c.len() <= MAX_LABEL_VALUE_BYTES);
        assert!(c.ends_with(ELLIPSIS));
        // 250 bytes plus one control character: fits after replacement, kept whole.
        let mut w = "z".repeat(250);
        w.push('\r');
        assert_eq!(clean(&w), format!("{}\u{FFFD}", "z".repeat(250)));
    }
}
