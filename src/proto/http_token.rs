//! HTTP tokens, lists and quoted strings (RFC 9110 sections 5.6.1 to 5.6.4): the header value
//! syntax that both the opening handshake and the permessage-deflate negotiation read.
//!
//! A leaf: it names nothing else of `proto`, so that [`super::handshake`] and [`super::deflate`]
//! share one definition of a token without depending on each other.

/// The characters besides letters and digits that a token may contain (`tchar`).
const TCHAR_PUNCTUATION: &[u8] = b"!#$%&'*+-.^_`|~";

/// Whether `b` may appear in a token (`tchar`, RFC 9110 section 5.6.2).
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || TCHAR_PUNCTUATION.contains(&b)
}

/// Whether `s` is a token: one or more `tchar` (RFC 9110 section 5.6.2).
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// `s` as a `&str` if it is a token, `None` otherwise.
pub fn token(s: &[u8]) -> Option<&str> {
    if is_token(s) {
        // A token is ASCII, so this cannot fail.
        std::str::from_utf8(s).ok()
    } else {
        None
    }
}

/// The non-empty elements of a comma-separated list of tokens (RFC 9110 section 5.6.1), each
/// trimmed of spaces and tabs. Quotes are not interpreted: use [`split_quoted`] for lists whose
/// elements may carry quoted strings.
pub fn list_elements(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(|t| t.trim_matches([' ', '\t']))
        .filter(|t| !t.is_empty())
}

/// Splits `s` at `sep` bytes outside double-quoted strings (a backslash escapes the next byte
/// inside quotes), trimming ASCII whitespace around each piece and keeping empty pieces, so that
/// the caller decides whether an empty piece is nothing (a list element) or an error (a
/// parameter). An unterminated quote runs to the end.
pub fn split_quoted(s: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let s = rest?;
        let mut quoted = false;
        let mut escaped = false;
        let mut end = s.len();
        for (i, &b) in s.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if quoted && b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = !quoted;
            } else if b == sep && !quoted {
                end = i;
                break;
            }
        }
        rest = (end < s.len()).then(|| &s[end + 1..]);
        Some(s[..end].trim_ascii())
    })
}

/// A parameter value that is a token, or a quoted string (RFC 9110 section 5.6.4) whose unescaped
/// content is a token (the rule RFC 6455 section 9.1 sets for extension parameters); the token,
/// unquoted and unescaped.
pub fn token_or_quoted(v: &[u8]) -> Option<String> {
    let raw = match v {
        [b'"', inner @ .., b'"'] => {
            let mut out = Vec::with_capacity(inner.len());
            let mut escaped = false;
            for &b in inner {
                if escaped {
                    out.push(b);
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    return None;
                } else {
                    out.push(b);
                }
            }
            if escaped {
                return None;
            }
            out
        }
        _ => v.to_vec(),
    };
    if !is_token(&raw) {
        return None;
    }
    String::from_utf8(raw).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_tchars_only_and_not_empty() {
        for ok in ["websocket", "Upgrade", "permessage-deflate", "a!#$%&'*+-.^_`|~9"] {
            assert!(is_token(ok.as_bytes()), "{ok:?}");
            assert_eq!(token(ok.as_bytes()), Some(ok));
        }
        for bad in ["", " ", "a b", "a,b", "a;b", "\"a\"", "a=b", "a/b", "é", "a\t"] {
            assert!(!is_token(bad.as_bytes()), "{bad:?}");
            assert_eq!(token(bad.as_bytes()), None);
        }
        assert!(!is_token(b"\xff"));
        assert!((0..=u8::MAX).filter(|&b| is_tchar(b)).count() == 26 * 2 + 10 + 15);
    }

    #[test]
    fn list_elements_skip_empty_and_trim_blanks() {
        let got: Vec<&str> = list_elements(" keep-alive ,\tUpgrade,, ,x").collect();
        assert_eq!(got, ["keep-alive", "Upgrade", "x"]);
        assert_eq!(list_elements("").count(), 0);
        assert_eq!(list_elements(" , ").count(), 0);
    }

    #[test]
    fn split_quoted_ignores_separators_inside_quotes_and_keeps_empty_pieces() {
        let got: Vec<&[u8]> = split_quoted(b"a; b=\"1;2\" ;; c=\"x\\\"; y\"", b';').collect();
        let want: [&[u8]; 4] = [b"a", b"b=\"1;2\"", b"", b"c=\"x\\\"; y\""];
        assert_eq!(got, want);
        let got: Vec<&[u8]> = split_quoted(b"a, \"b, c", b',').collect();
        let want: [&[u8]; 2] = [b"a", b"\"b, c"];
        assert_eq!(got, want);
        assert_eq!(split_quoted(b"", b',').collect::<Vec<_>>(), [b""]);
    }

    #[test]
    fn token_or_quoted_unescapes_a_quoted_token() {
        assert_eq!(token_or_quoted(b"15").as_deref(), Some("15"));
        assert_eq!(token_or_quoted(b"\"15\"").as_deref(), Some("15"));
        assert_eq!(token_or_quoted(b"\"1\\5\"").as_deref(), Some("15"));
        for bad in [
            &b"\"\""[..],
            b"",
            b"\"1 5\"",
            b"\"15",
            b"\"1\"5\"",
            b"\"15\\\"",
            b"1 5",
        ] {
            assert_eq!(token_or_quoted(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
