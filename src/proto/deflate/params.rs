//! The syntax of one permessage-deflate offer or answer element (RFC 7692 section 7.1, RFC 6455
//! section 9.1): `permessage-deflate; param[=value]; ...`, each parameter known, given at most
//! once, and with a value where one is allowed.

use super::{MAX_WINDOW_BITS, MIN_WINDOW_BITS};
use crate::proto::http_token::{self, token};

/// The parameters of one offer or answer, each checked for its syntax (no value, or a window
/// size of 8 to 15 without leading zeros) and seen at most once.
#[derive(Debug, Default)]
pub(super) struct Params {
    pub(super) server_no_context_takeover: bool,
    pub(super) client_no_context_takeover: bool,
    /// `Some(None)`: present without a value.
    pub(super) server_max_window_bits: Option<Option<u8>>,
    pub(super) client_max_window_bits: Option<Option<u8>>,
}

impl Params {
    /// `None` if a parameter is unknown, repeated, or has a value it may not have.
    pub(super) fn parse<'a>(params: impl Iterator<Item = Option<(&'a str, Option<String>)>>) -> Option<Self> {
        let mut p = Self::default();
        for param in params {
            let (name, value) = param?;
            let flag = |seen: &mut bool| {
                if *seen || value.is_some() {
                    return None;
                }
                *seen = true;
                Some(())
            };
            let bits = |slot: &mut Option<Option<u8>>| {
                if slot.is_some() {
                    return None;
                }
                *slot = Some(match &value {
                    None => None,
                    Some(v) => Some(window_bits(v)?),
                });
                Some(())
            };
            match name.to_ascii_lowercase().as_str() {
                "server_no_context_takeover" => flag(&mut p.server_no_context_takeover)?,
                "client_no_context_takeover" => flag(&mut p.client_no_context_takeover)?,
                "server_max_window_bits" => bits(&mut p.server_max_window_bits)?,
                "client_max_window_bits" => bits(&mut p.client_max_window_bits)?,
                _ => return None,
            }
        }
        Some(p)
    }
}

/// A window size: a decimal integer from 8 to 15 without leading zeros.
fn window_bits(v: &str) -> Option<u8> {
    if v.is_empty() || v.len() > 2 || v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<u8>()
        .ok()
        .filter(|b| (MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(b))
}

/// The non-empty elements of a list whose elements may carry quoted strings (the list rule of
/// RFC 9110 section 5.6.1).
pub(super) fn quoted_list_elements(s: &[u8]) -> impl Iterator<Item = &[u8]> {
    http_token::split_quoted(s, b',').filter(|piece| !piece.is_empty())
}

/// One list element: `name *( OWS ";" OWS param [ OWS "=" OWS ( token / quoted-string ) ] )`.
/// `None` if the name is not a token; each parameter is `None` if it is malformed.
#[allow(clippy::type_complexity)]
pub(super) fn parse_element(
    element: &[u8],
) -> Option<(&str, impl Iterator<Item = Option<(&str, Option<String>)>>)> {
    let mut pieces = http_token::split_quoted(element, b';');
    let name = token(pieces.next()?)?;
    Some((name, pieces.map(parse_param)))
}

fn parse_param(piece: &[u8]) -> Option<(&str, Option<String>)> {
    let (name, value) = match piece.iter().position(|&b| b == b'=') {
        None => (piece, None),
        Some(i) => (piece[..i].trim_ascii(), Some(piece[i + 1..].trim_ascii())),
    };
    let name = token(name)?;
    let value = match value {
        None => None,
        Some(v) => Some(http_token::token_or_quoted(v)?),
    };
    Some((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_bits_accept_8_to_15_only() {
        for v in 8..=15u8 {
            assert_eq!(window_bits(&v.to_string()), Some(v));
        }
        for v in ["", "0", "7", "16", "08", "015", "1a", " 9", "-9", "99999999999"] {
            assert_eq!(window_bits(v), None, "{v:?}");
        }
    }
}
