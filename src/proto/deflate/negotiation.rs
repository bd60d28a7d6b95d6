//! The negotiation of permessage-deflate (RFC 7692 section 7.1): a client's offer, a server's
//! answer to the first acceptable offer, the client's check of that answer, and what the
//! agreement means for each end. Pure functions over header values.

use std::fmt;

use super::params::{Params, parse_element, quoted_list_elements};
use super::{AVAILABLE, DEFAULT_LEVEL, DEFAULT_THRESHOLD, EXTENSION_NAME, MAX_WINDOW_BITS, MIN_WINDOW_BITS};
use crate::proto::error::HandshakeError;
use crate::proto::role::Role;

/// One end's policy for permessage-deflate, in its own terms ("compress" is what this end sends,
/// "decompress" what it receives); it works for either role.
///
/// The defaults bound memory: no context takeover either way, so zlib state exists only while a
/// message is being compressed or inflated (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Keep this end's compression context between messages when the peer allows it: better
    /// ratio on streams of similar messages, at the price of a compressor (about 370 KiB) owned by
    /// every connection. Off: a server answers `server_no_context_takeover`, a client offers
    /// `client_no_context_takeover`.
    pub compress_context_takeover: bool,
    /// Let the peer keep its compression context between messages: this end then keeps a
    /// decompressor (about 46 KiB) per connection. Off: a server answers
    /// `client_no_context_takeover`, a client offers `server_no_context_takeover`.
    pub decompress_context_takeover: bool,
    /// Base-2 logarithm of this end's LZ77 window, 8 to 15 (8 compresses with zlib's 9, whose
    /// matches never reach further than 250 bytes back, within a 256-byte window).
    pub compress_window_bits: u8,
    /// The largest window the peer may compress with, 8 to 15, when it lets this end choose (a
    /// client offer with `client_max_window_bits`; a client always asks with
    /// `server_max_window_bits` below 15).
    pub decompress_window_bits: u8,
    /// Messages shorter than this many bytes are sent uncompressed.
    pub threshold: usize,
    /// Compression level, 0 (stored) to 9 (best).
    pub level: u32,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            compress_context_takeover: false,
            decompress_context_takeover: false,
            compress_window_bits: MAX_WINDOW_BITS,
            decompress_window_bits: MAX_WINDOW_BITS,
            threshold: DEFAULT_THRESHOLD,
            level: DEFAULT_LEVEL,
        }
    }
}

impl DeflateConfig {
    fn compress_bits(&self) -> u8 {
        self.compress_window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS)
    }

    fn decompress_bits(&self) -> u8 {
        self.decompress_window_bits
            .clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS)
    }

    /// The offer a client sends for this policy, e.g.
    /// `permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits`.
    ///
    /// `client_max_window_bits` is always offered (this end can compress with any window the
    /// server picks), with a value when `compress_window_bits` is below 15.
    pub fn offer(&self) -> String {
        let mut s = String::from(EXTENSION_NAME);
        if !self.decompress_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if !self.compress_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if self.decompress_bits() < MAX_WINDOW_BITS {
            s.push_str(&format!("; server_max_window_bits={}", self.decompress_bits()));
        }
        s.push_str("; client_max_window_bits");
        if self.compress_bits() < MAX_WINDOW_BITS {
            s.push_str(&format!("={}", self.compress_bits()));
        }
        s
    }
}

/// The agreed parameters, as the server's answer states them (RFC 7692 section 7.1).
///
/// `Display` writes the `Sec-WebSocket-Extensions` value of the answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compression context after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compression context after every message.
    pub client_no_context_takeover: bool,
    /// The server compresses with at most this window (base-2 logarithm); `None`: 15.
    pub server_max_window_bits: Option<u8>,
    /// The client compresses with at most this window (base-2 logarithm); `None`: 15.
    pub client_max_window_bits: Option<u8>,
}

impl fmt::Display for DeflateParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXTENSION_NAME)?;
        if self.server_no_context_takeover {
            f.write_str("; server_no_context_takeover")?;
        }
        if self.client_no_context_takeover {
            f.write_str("; client_no_context_takeover")?;
        }
        if let Some(bits) = self.server_max_window_bits {
            write!(f, "; server_max_window_bits={bits}")?;
        }
        if let Some(bits) = self.client_max_window_bits {
            write!(f, "; client_max_window_bits={bits}")?;
        }
        Ok(())
    }
}

impl DeflateParams {
    /// What the agreement means for the end with `role` and policy `config`.
    pub fn negotiated(&self, role: Role, config: &DeflateConfig) -> Negotiated {
        let (own_reset, own_bits, peer_reset, peer_bits) = match role {
            Role::Server => (
                self.server_no_context_takeover,
                self.server_max_window_bits,
                self.client_no_context_takeover,
                self.client_max_window_bits,
            ),
            Role::Client => (
                self.client_no_context_takeover,
                self.client_max_window_bits,
                self.server_no_context_takeover,
                self.server_max_window_bits,
            ),
        };
        Negotiated {
            params: *self,
            compress_context_takeover: config.compress_context_takeover && !own_reset,
            decompress_context_takeover: !peer_reset,
            compress_window_bits: own_bits.unwrap_or(MAX_WINDOW_BITS).min(config.compress_bits()),
            decompress_window_bits: peer_bits.unwrap_or(MAX_WINDOW_BITS),
            threshold: config.threshold,
            level: config.level.min(9),
        }
    }
}

/// permessage-deflate as agreed, from one end's point of view: what a connection needs to
/// compress and decompress (`Connection::with_deflate`, feature `deflate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The parameters of the agreement, as the server's answer states them.
    pub params: DeflateParams,
    /// This end keeps its compression context between messages (it owns a compressor).
    pub compress_context_takeover: bool,
    /// The peer may keep its context, so this end keeps its decompressor between messages.
    pub decompress_context_takeover: bool,
    /// The window this end compresses with (8 means zlib's 9, see [`DeflateConfig`]).
    pub compress_window_bits: u8,
    /// The largest window the peer compresses with.
    pub decompress_window_bits: u8,
    /// Messages shorter than this are sent uncompressed.
    pub threshold: usize,
    /// Compression level, 0-9.
    pub level: u32,
}

/// Answers the permessage-deflate offers of a WebSocket upgrade request under `config`: the
/// parameters of the first acceptable offer, or `None` when there is none (or when this build
/// has no `deflate` feature). Put `params.to_string()` in the response's
/// `Sec-WebSocket-Extensions` field.
///
/// `values` are the raw values of the request's `Sec-WebSocket-Extensions` fields, in order:
/// from a parsed request, `req.header_values("sec-websocket-extensions")`
/// ([`Request::header_values`](crate::proto::handshake::Request::header_values)).
pub fn negotiate<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    config: &DeflateConfig,
) -> Option<DeflateParams> {
    if !AVAILABLE {
        return None;
    }
    first_acceptable(values, config)
}

/// The answer to the first acceptable permessage-deflate offer among `values`.
fn first_acceptable<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    config: &DeflateConfig,
) -> Option<DeflateParams> {
    values
        .into_iter()
        .flat_map(quoted_list_elements)
        .filter_map(|element| {
            let (name, params) = parse_element(element)?;
            if !name.eq_ignore_ascii_case(EXTENSION_NAME) {
                return None;
            }
            let offer = Params::parse(params)?;
            // An offer must give server_max_window_bits a value (section 7.1.2.1).
            if offer.server_max_window_bits == Some(None) {
                return None;
            }
            Some(answer(&offer, config))
        })
        .next()
}

/// The server's answer to a valid offer.
fn answer(offer: &Params, config: &DeflateConfig) -> DeflateParams {
    let own = config.compress_bits();
    let server_max_window_bits = match offer.server_max_window_bits.flatten() {
        Some(asked) => Some(asked.min(own)),
        // Allowed without being asked (section 7.1.2.1): it tells the client it may use less.
        None => (own < MAX_WINDOW_BITS).then_some(own),
    };
    // Only when the client said it can limit its window (section 7.1.2.2).
    let client_max_window_bits = match offer.client_max_window_bits {
        None => None,
        Some(value) => {
            let limit = value.unwrap_or(MAX_WINDOW_BITS).min(config.decompress_bits());
            (value.is_some() || limit < MAX_WINDOW_BITS).then_some(limit)
        }
    };
    DeflateParams {
        server_no_context_takeover: offer.server_no_context_takeover || !config.compress_context_takeover,
        // The server may always ask for it (section 7.1.1.2); a client that offered it gets it
        // confirmed, which saves this end a decompressor per connection.
        client_no_context_takeover: offer.client_no_context_takeover || !config.decompress_context_takeover,
        server_max_window_bits,
        client_max_window_bits,
    }
}

/// Checks a server's `Sec-WebSocket-Extensions` answer against the client's offer made from
/// `offered` (RFC 7692 section 7.1: a client MUST fail the connection on an answer it cannot
/// accept). `values` are the raw values of every such field of the response.
///
/// `Ok(None)`: the server declined the extension. An extension other than permessage-deflate,
/// or more than one element, is [`HandshakeError::UnofferedExtension`]; a malformed element, an
/// unknown, repeated or invalid parameter, or one the offer does not allow, is
/// [`HandshakeError::InvalidExtension`].
pub fn check_response<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    offered: &DeflateConfig,
) -> Result<Option<DeflateParams>, HandshakeError> {
    let mut agreed = None;
    for element in values.into_iter().flat_map(quoted_list_elements) {
        let (name, params) =
            parse_element(element).ok_or(HandshakeError::InvalidExtension("malformed element"))?;
        if !name.eq_ignore_ascii_case(EXTENSION_NAME) || agreed.is_some() {
            return Err(HandshakeError::UnofferedExtension);
        }
        let p = Params::parse(params).ok_or(HandshakeError::InvalidExtension(
            "unknown, repeated or invalid parameter",
        ))?;
        let server_max_window_bits = match p.server_max_window_bits {
            None if offered.decompress_bits() < MAX_WINDOW_BITS => {
                return Err(HandshakeError::InvalidExtension(
                    "server_max_window_bits offered but not answered",
                ));
            }
            None => None,
            Some(None) => {
                return Err(HandshakeError::InvalidExtension(
                    "server_max_window_bits without a value",
                ));
            }
            Some(Some(bits)) if bits > offered.decompress_bits() => {
                return Err(HandshakeError::InvalidExtension(
                    "server_max_window_bits above the value offered",
                ));
            }
            Some(bits) => bits,
        };
        let client_max_window_bits = match p.client_max_window_bits {
            None => None,
            Some(None) => {
                return Err(HandshakeError::InvalidExtension(
                    "client_max_window_bits without a value",
                ));
            }
            // Offered without a value unless below 15: any value up to the offered one is fine.
            Some(Some(bits)) if bits > offered.compress_bits() => {
                return Err(HandshakeError::InvalidExtension(
                    "client_max_window_bits above the value offered",
                ));
            }
            Some(bits) => bits,
        };
        if !offered.decompress_context_takeover && !p.server_no_context_takeover {
            return Err(HandshakeError::InvalidExtension(
                "server_no_context_takeover offered but not answered",
            ));
        }
        agreed = Some(DeflateParams {
            server_no_context_takeover: p.server_no_context_takeover,
            client_no_context_takeover: p.client_no_context_takeover,
            server_max_window_bits,
            client_max_window_bits,
        });
    }
    Ok(agreed)
}

#[cfg(test)]
mod tests {
    use super::*;

    // `first_acceptable` rather than `negotiate`: the negotiation is tested with and
    // without the `deflate` feature.
    fn offer(values: &[&str]) -> Option<DeflateParams> {
        first_acceptable(values.iter().map(|v| v.as_bytes()), &DeflateConfig::default())
    }

    fn offer_with(values: &[&str], config: DeflateConfig) -> Option<String> {
        first_acceptable(values.iter().map(|v| v.as_bytes()), &config).map(|p| p.to_string())
    }

    const DEFAULT_ANSWER: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

    #[test]
    fn server_answers_each_parameter_with_and_without_values() {
        let cases: &[(&str, Option<&str>)] = &[
            ("permessage-deflate", Some(DEFAULT_ANSWER)),
            ("PerMessage-Deflate", Some(DEFAULT_ANSWER)),
            (
                "permessage-deflate; server_no_context_takeover",
                Some(DEFAULT_ANSWER),
            ),
            (
                "permessage-deflate; client_no_context_takeover",
                Some(DEFAULT_ANSWER),
            ),
            // A value on a flag: declined.
            ("permessage-deflate; server_no_context_takeover=1", None),
            ("permessage-deflate; client_no_context_takeover=\"x\"", None),
            // server_max_window_bits needs a value of 8 to 15.
            ("permessage-deflate; server_max_window_bits", None),
            (
                "permessage-deflate; server_max_window_bits=10",
                Some(
                    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10",
                ),
            ),
            (
                "permessage-deflate; server_max_window_bits=8",
                Some(
                    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8",
                ),
            ),
            (
                "permessage-deflate; server_max_window_bits=\"15\"",
                Some(
                    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15",
                ),
            ),
            // client_max_window_bits may have no value; with one, it is echoed.
            ("permessage-deflate; client_max_window_bits", Some(DEFAULT_ANSWER)),
            (
                "permessage-deflate; client_max_window_bits=9",
                Some(
                    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=9",
                ),
            ),
            (
                "permessage-deflate ; client_max_window_bits = \"12\" ",
                Some(
                    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=12",
                ),
            ),
        ];
        for (offer_value, expected) in cases {
            let got = offer(&[offer_value]).map(|p| p.to_string());
            assert_eq!(got.as_deref(), *expected, "offer {offer_value:?}");
        }
    }

    #[test]
    fn server_declines_bad_values_duplicates_and_unknown_parameters() {
        for bad in [
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=08",
            "permessage-deflate; server_max_window_bits=+9",
            "permessage-deflate; server_max_window_bits=9.0",
            "permessage-deflate; server_max_window_bits=",
            "permessage-deflate; server_max_window_bits=\"\"",
            "permessage-deflate; server_max_window_bits=\"1 0\"",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; client_max_window_bits=100",
            "permessage-deflate; client_max_window_bits=\"10",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; unknown",
            "permessage-deflate; unknown=1",
            "permessage-deflate;",
            "permessage-deflate;; client_max_window_bits",
            "permessage-deflate; =1",
            "permessage-deflate; bad param",
            "\"permessage-deflate\"",
            "x-webkit-deflate-frame",
            "permessage-deflate-x",
        ] {
            assert_eq!(offer(&[bad]), None, "offer {bad:?} must be declined");
        }
    }

    #[test]
    fn server_takes_the_first_acceptable_of_several_offers_and_headers() {
        let got = offer(&[
            "x-foo; a=1, permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; bogus, permessage-deflate; client_max_window_bits=10, permessage-deflate",
        ]);
        assert_eq!(
            got.map(|p| p.to_string()).as_deref(),
            Some(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=10"
            )
        );
        // A comma inside a quoted value does not split the list.
        let got = offer(&["x-foo; a=\"1,2\", permessage-deflate; client_max_window_bits"]);
        assert_eq!(got.map(|p| p.to_string()).as_deref(), Some(DEFAULT_ANSWER));
        // Empty elements are skipped.
        assert!(offer(&[" , ,permessage-deflate,"]).is_some());
        assert_eq!(offer(&["x-foo", "x-bar"]), None);
        assert_eq!(offer(&[]), None);
        // Not UTF-8: that element is declined, the next one is fine.
        let values: [&[u8]; 2] = [b"permessage-deflate; a=\xff", b"permessage-deflate"];
        assert!(first_acceptable(values, &DeflateConfig::default()).is_some());
    }

    #[test]
    fn server_policy_shapes_the_answer() {
        let takeover = DeflateConfig {
            compress_context_takeover: true,
            decompress_context_takeover: true,
            ..DeflateConfig::default()
        };
        assert_eq!(
            offer_with(&["permessage-deflate"], takeover).as_deref(),
            Some("permessage-deflate")
        );
        // The client's requests are honoured whatever the policy.
        assert_eq!(
            offer_with(
                &["permessage-deflate; server_no_context_takeover; client_no_context_takeover"],
                takeover
            )
            .as_deref(),
            Some(DEFAULT_ANSWER)
        );
        let small = DeflateConfig {
            compress_window_bits: 10,
            decompress_window_bits: 9,
            ..takeover
        };
        assert_eq!(
            offer_with(&["permessage-deflate"], small).as_deref(),
            Some("permessage-deflate; server_max_window_bits=10")
        );
        assert_eq!(
            offer_with(
                &["permessage-deflate; server_max_window_bits=12; client_max_window_bits"],
                small
            )
            .as_deref(),
            Some("permessage-deflate; server_max_window_bits=10; client_max_window_bits=9")
        );
        assert_eq!(
            offer_with(&["permessage-deflate; server_max_window_bits=8"], small).as_deref(),
            Some("permessage-deflate; server_max_window_bits=8")
        );
    }

    #[test]
    fn negotiate_declines_everything_without_the_feature() {
        let got = negotiate([b"permessage-deflate".as_slice()], &DeflateConfig::default());
        assert_eq!(got.is_some(), AVAILABLE);
    }

    #[test]
    fn negotiated_view_per_role() {
        let params = DeflateParams {
            server_no_context_takeover: true,
            client_no_context_takeover: false,
            server_max_window_bits: Some(10),
            client_max_window_bits: Some(12),
        };
        let config = DeflateConfig {
            compress_context_takeover: true,
            ..DeflateConfig::default()
        };
        let s = params.negotiated(Role::Server, &config);
        assert!(!s.compress_context_takeover && s.decompress_context_takeover);
        assert_eq!((s.compress_window_bits, s.decompress_window_bits), (10, 12));
        let c = params.negotiated(Role::Client, &config);
        assert!(c.compress_context_takeover && !c.decompress_context_takeover);
        assert_eq!((c.compress_window_bits, c.decompress_window_bits), (12, 10));
    }

    #[test]
    fn client_offers_its_policy() {
        assert_eq!(
            DeflateConfig::default().offer(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits"
        );
        let c = DeflateConfig {
            compress_context_takeover: true,
            decompress_context_takeover: true,
            compress_window_bits: 9,
            decompress_window_bits: 11,
            ..DeflateConfig::default()
        };
        assert_eq!(
            c.offer(),
            "permessage-deflate; server_max_window_bits=11; client_max_window_bits=9"
        );
        // Our own server accepts what our client offers.
        assert!(offer(&[&c.offer()]).is_some());
        assert!(offer(&[&DeflateConfig::default().offer()]).is_some());
    }

    fn check(values: &[&str], offered: &DeflateConfig) -> Result<Option<String>, HandshakeError> {
        check_response(values.iter().map(|v| v.as_bytes()), offered).map(|p| p.map(|p| p.to_string()))
    }

    #[test]
    fn client_accepts_valid_answers() {
        let plain = DeflateConfig {
            compress_context_takeover: true,
            decompress_context_takeover: true,
            ..DeflateConfig::default()
        };
        let ok: &[(&str, &str)] = &[
            ("permessage-deflate", "permessage-deflate"),
            (
                "permessage-deflate; server_no_context_takeover",
                "permessage-deflate; server_no_context_takeover",
            ),
            (
                "permessage-deflate; client_no_context_takeover",
                "permessage-deflate; client_no_context_takeover",
            ),
            (
                "permessage-deflate; server_max_window_bits=8",
                "permessage-deflate; server_max_window_bits=8",
            ),
            (
                "permessage-deflate; client_max_window_bits=\"10\"",
                "permessage-deflate; client_max_window_bits=10",
            ),
        ];
        for (answer, expected) in ok {
            assert_eq!(
                check(&[answer], &plain),
                Ok(Some((*expected).to_owned())),
                "answer {answer:?}"
            );
        }
        assert_eq!(check(&[], &plain), Ok(None));
        assert_eq!(check(&[" , "], &plain), Ok(None));
    }

    #[test]
    fn client_rejects_invalid_or_unoffered_answers() {
        let default = DeflateConfig::default();
        let small = DeflateConfig {
            compress_window_bits: 10,
            decompress_window_bits: 11,
            ..DeflateConfig::default()
        };
        let bad: &[(&str, &DeflateConfig, HandshakeError)] = &[
            ("x-foo", &default, HandshakeError::UnofferedExtension),
            (
                "permessage-deflate; server_no_context_takeover, permessage-deflate; server_no_context_takeover",
                &default,
                HandshakeError::UnofferedExtension,
            ),
            (
                "permessage-deflate; server_no_context_takeover, x-foo",
                &default,
                HandshakeError::UnofferedExtension,
            ),
        ];
        for (answer, offered, err) in bad {
            assert_eq!(check(&[answer], offered), Err(err.clone()), "answer {answer:?}");
        }
        for (answer, offered) in [
            // We asked the server not to keep its context: it must say so.
            ("permessage-deflate", &default),
            ("permessage-deflate; server_no_context_takeover; bogus", &default),
            (
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                &default,
            ),
            ("permessage-deflate; server_no_context_takeover=1", &default),
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits",
                &default,
            ),
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=16",
                &default,
            ),
            (
                "permessage-deflate; server_no_context_takeover; client_max_window_bits",
                &default,
            ),
            (
                "permessage-deflate; server_no_context_takeover; client_max_window_bits=7",
                &default,
            ),
            // Above what was offered, or missing though offered.
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=12",
                &small,
            ),
            ("permessage-deflate; server_no_context_takeover", &small),
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=11; client_max_window_bits=11",
                &small,
            ),
            ("permessage-deflate;", &default),
        ] {
            assert!(
                matches!(
                    check(&[answer], offered),
                    Err(HandshakeError::InvalidExtension(_))
                ),
                "answer {answer:?} must fail the handshake"
            );
        }
        assert_eq!(
            check(
                &["permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=10"],
                &small
            ),
            Ok(Some(
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=10"
                    .to_owned()
            ))
        );
    }
}
