//! Config parse errors without the config's values: toml's own message quotes the offending line,
//! and serde's quotes the value ("invalid type: string \"hunter2\""), so a password typed into the
//! wrong key would be printed at start and on every SIGHUP. This keeps the position, the key and
//! the reason, and leaves every value out.

/// `line L, column C (key `k`): reason`, with every quoted value in the reason replaced by `"…"`.
pub(crate) fn parse_error(e: &toml::de::Error, text: &str) -> String {
    let reason = redact_quoted(e.message().trim());
    let Some(span) = e.span() else {
        return format!("{reason} (values are not shown)");
    };
    let start = span.start.min(text.len());
    let before = text.get(..start).unwrap_or("");
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    // Custom messages (an address parser's) may hold the value unquoted: take out whatever stands
    // at the span, with and without its quotes — unless the span is a key (an unknown field: a
    // `=` follows it) or a table header, which the message names and which stay.
    let raw = text.get(span.clone()).unwrap_or("");
    let after = text.get(span.end..).unwrap_or("");
    let is_key = after.trim_start_matches([' ', '\t']).starts_with('=');
    let is_table = raw.trim_start().starts_with('[') && !raw.contains('"') && !raw.contains('\'');
    let raw = if is_key || is_table { "" } else { raw };
    let mut reason = reason;
    // The span may be a whole array or table: the whole, each quoted string in it and every word
    // in it are values to leave out (longest first, so no part of one is left behind).
    let quoted = raw.split(['"', '\'']).skip(1).step_by(2);
    let mut words: Vec<&str> = std::iter::once(raw.trim())
        .chain(quoted)
        .chain(raw.split(|c: char| c.is_whitespace() || "[]{},=\"'".contains(c)))
        .collect();
    words.sort_by_key(|w| std::cmp::Reverse(w.len()));
    for v in words {
        if v.len() >= 3 {
            reason = reason.replace(v, "…");
        }
    }
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    let line_text = text[line_start..].lines().next().unwrap_or("");
    // The key of a `key = value` line; a bare key is a name the user chose, never a secret.
    let key = line_text
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        });
    match key {
        Some(k) => {
            format!("line {line}, column {column} (key `{k}`): {reason} (values are not shown)")
        }
        None => format!("line {line}, column {column}: {reason} (values are not shown)"),
    }
}

/// Every `"…"` (and `'…'`) stretch of `s` emptied: serde and toml quote values that way; names of
/// keys and types are quoted with backticks and stay.
fn redact_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut open: Option<char> = None;
    for c in s.chars() {
        match open {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '"' || c == '\'' {
                    open = Some(c);
                }
            }
        }
    }
    if open.is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        let e = toml::from_str::<super::super::file::FileConfig>(text).unwrap_err();
        parse_error(&e, text)
    }

    #[test]
    fn a_password_in_the_wrong_place_is_never_echoed() {
        for text in [
            "[scan.gmp]\npasswrd = \"hunter2\"\n",
            "[email]\nenabled = \"hunter2\"\n",
            "[email]\nusername = \"x\"\npassword = 'hunter2'\n",
            "[email]\nusername = \"hunter2\n",
            "[[targets]]\nname = \"a\"\ncidrs = [\"hunter2\"]\n",
            "[[targets]]\nname = \"a\"\ncidrs = [\n  \"10.0.0.0/8\",\n  \"hunter2\",\n]\n",
            "hunter2\n",
        ] {
            let m = err(text);
            assert!(!m.contains("hunter2"), "{text:?} -> {m}");
            assert!(m.contains("line "), "{text:?} -> {m}");
            assert!(m.contains("values are not shown"), "{m}");
        }
    }

    #[test]
    fn the_position_key_and_reason_stay() {
        let m = err("[email]\nenabled = \"yes\"\n");
        assert!(m.starts_with("line 2, column "), "{m}");
        assert!(m.contains("key `enabled`"), "{m}");
        assert!(m.contains("expected a boolean"), "{m}");
        let m = err("[scan.gmp]\npasswrd = \"x\"\n");
        assert!(
            m.contains("unknown field `passwrd`"),
            "unknown field named: {m}"
        );
        let m = err("[scan.tcp]\nconcurency = 5\n");
        assert!(m.contains("unknown field `concurency`"), "{m}");
    }

    #[test]
    fn quoted_stretches_are_emptied() {
        assert_eq!(
            redact_quoted(r#"invalid type: string "s3cret", expected `bool`"#),
            r#"invalid type: string "…", expected `bool`"#
        );
        assert_eq!(redact_quoted("unterminated \"abc"), "unterminated \"…");
    }
}
