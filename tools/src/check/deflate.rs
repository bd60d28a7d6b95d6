//! permessage-deflate (RFC 7692) on the checker's side: reading offers, judging the server's
//! answer against them, and the client's own compressor and inflater.
//!
//! The checker parses offers and answers itself rather than through the core's negotiation, so
//! that a server built on the same core is judged by an independent reading of the RFC. Its
//! compressor and inflater are flate2's raw DEFLATE streams, used directly.
//!
//! What the answer to a list of offers must be (RFC 7692 sections 5 and 7.1):
//!
//! - no extension (declining is always allowed), or one `permessage-deflate` element;
//! - with known parameters only, each at most once; the two `*_no_context_takeover` without a
//!   value, the two `*_max_window_bits` with a value of 8 to 15 without leading zeros;
//! - fitting one of the valid offers: `server_no_context_takeover` confirmed if it was offered,
//!   `server_max_window_bits` answered with the offered value or less if it was offered,
//!   `client_max_window_bits` only if it was offered, and not above a value offered with it.

/// The extension's name.
pub(crate) const NAME: &str = "permessage-deflate";

/// The last four bytes of a sync flush: removed by the sender, appended by the receiver.
pub(crate) const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The most the checker inflates of one message from the server.
#[cfg(feature = "deflate")]
const MAX_INFLATED: usize = 64 << 20;

/// The parameters of one offer or answer, each seen at most once, with valid values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Params {
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    /// `Some(None)`: present without a value.
    pub server_max_window_bits: Option<Option<u8>>,
    pub client_max_window_bits: Option<Option<u8>>,
}

/// The agreement, as the server's answer states it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Agreed {
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    pub server_max_window_bits: Option<u8>,
    pub client_max_window_bits: Option<u8>,
}

impl std::fmt::Display for Agreed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(NAME)?;
        if self.server_no_context_takeover {
            f.write_str("; server_no_context_takeover")?;
        }
        if self.client_no_context_takeover {
            f.write_str("; client_no_context_takeover")?;
        }
        if let Some(b) = self.server_max_window_bits {
            write!(f, "; server_max_window_bits={b}")?;
        }
        if let Some(b) = self.client_max_window_bits {
            write!(f, "; client_max_window_bits={b}")?;
        }
        Ok(())
    }
}

/// The permessage-deflate offers among `values` (one per header field) that a server may
/// accept. Offers of other extensions and invalid offers are left out.
pub(crate) fn valid_offers(values: &[String]) -> Vec<Params> {
    values
        .iter()
        .flat_map(|v| elements(v))
        .filter_map(|el| {
            let (name, params) = parse_element(el).ok()?;
            if !name.eq_ignore_ascii_case(NAME) {
                return None;
            }
            let p = parse_params(&params).ok()?;
            // An offer must give server_max_window_bits a value (section 7.1.2.1).
            (p.server_max_window_bits != Some(None)).then_some(p)
        })
        .collect()
}

/// Whether every element of `values` follows the grammar of RFC 6455 section 9.1 (a token name,
/// parameters with token values, quoted or not). A request that breaks it may be rejected
/// outright (RFC 6455 4.2.1); one that only breaks RFC 7692's rules must be declined.
pub(crate) fn well_formed(values: &[String]) -> bool {
    values
        .iter()
        .flat_map(|v| elements(v))
        .all(|el| parse_element(el).is_ok())
}

/// Judges the server's `Sec-WebSocket-Extensions` answer (`values`, one per field) against the
/// valid offers: `Ok(None)` when it declined, the agreement when it accepted as it may, or why
/// the answer is wrong.
pub(crate) fn judge_answer(values: &[&[u8]], offers: &[Params]) -> Result<Option<Agreed>, String> {
    let mut all = Vec::new();
    for v in values {
        let v = std::str::from_utf8(v)
            .map_err(|_| "the Sec-WebSocket-Extensions answer is not UTF-8".to_owned())?;
        all.extend(elements(v));
    }
    let element = match all.as_slice() {
        [] => return Ok(None),
        [one] => *one,
        many => {
            return Err(format!(
                "the server answered {} extension elements ({}); one permessage-deflate offer was \
                 accepted at most (RFC 6455 9.1, RFC 7692 5)",
                many.len(),
                many.join(", ")
            ));
        }
    };
    let (name, params) = parse_element(element)
        .map_err(|why| format!("the answer {element:?} is malformed: {why} (RFC 6455 9.1)"))?;
    if !name.eq_ignore_ascii_case(NAME) {
        return Err(format!(
            "the server selected the extension {name:?}, which is not permessage-deflate (RFC 6455 9.1)"
        ));
    }
    if offers.is_empty() {
        return Err(format!(
            "the server accepted permessage-deflate ({element:?}) although no offer was valid: it must \
             decline them (RFC 7692 5)"
        ));
    }
    let p = parse_params(&params)
        .map_err(|why| format!("the answer {element:?} is invalid: {why} (RFC 7692 7.1)"))?;
    let server_max_window_bits = match p.server_max_window_bits {
        Some(None) => {
            return Err(format!(
                "the answer {element:?} has server_max_window_bits without a value (RFC 7692 7.1.2.1)"
            ));
        }
        Some(v) => v,
        None => None,
    };
    let client_max_window_bits = match p.client_max_window_bits {
        Some(None) => {
            return Err(format!(
                "the answer {element:?} has client_max_window_bits without a value (RFC 7692 7.1.2.2)"
            ));
        }
        Some(v) => v,
        None => None,
    };
    let agreed = Agreed {
        server_no_context_takeover: p.server_no_context_takeover,
        client_no_context_takeover: p.client_no_context_takeover,
        server_max_window_bits,
        client_max_window_bits,
    };
    let mut first_why = None;
    for offer in offers {
        match fits(&agreed, offer) {
            Ok(()) => return Ok(Some(agreed)),
            Err(why) => {
                first_why.get_or_insert(why);
            }
        }
    }
    Err(format!(
        "the answer {element:?} fits none of the valid offers: {}",
        first_why.unwrap_or_default()
    ))
}

/// Whether an answer may be the answer to `offer`.
fn fits(a: &Agreed, offer: &Params) -> Result<(), String> {
    if offer.server_no_context_takeover && !a.server_no_context_takeover {
        return Err("server_no_context_takeover was offered and not confirmed (RFC 7692 7.1.1.1)".to_owned());
    }
    if let Some(Some(n)) = offer.server_max_window_bits {
        match a.server_max_window_bits {
            None => {
                return Err(format!(
                    "server_max_window_bits={n} was offered and not answered (RFC 7692 7.1.2.1)"
                ));
            }
            Some(m) if m > n => {
                return Err(format!(
                    "server_max_window_bits={m} is above the {n} offered (RFC 7692 7.1.2.1)"
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(m) = a.client_max_window_bits {
        match offer.client_max_window_bits {
            None => {
                return Err(
                    "client_max_window_bits was answered but not offered (RFC 7692 7.1.2.2)".to_owned(),
                );
            }
            Some(Some(n)) if m > n => {
                return Err(format!(
                    "client_max_window_bits={m} is above the {n} offered (RFC 7692 7.1.2.2)"
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The elements of an extension list: split at commas outside quoted strings, trimmed, empty
/// ones skipped.
fn elements(v: &str) -> Vec<&str> {
    split_outside_quotes(v, ',')
        .into_iter()
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect()
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut escaped, mut start) = (false, false, 0);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

/// A parameter's name (in lower case) and value.
type Param = (String, Option<String>);

/// One element: a token name, then `; name[=value]` parameters (value a token or a quoted
/// string whose content is a token).
fn parse_element(el: &str) -> Result<(String, Vec<Param>), String> {
    let mut pieces = split_outside_quotes(el, ';').into_iter().map(str::trim);
    let name = pieces.next().unwrap_or_default();
    if !is_token(name) {
        return Err(format!("{name:?} is not a token"));
    }
    let mut params = Vec::new();
    for piece in pieces {
        let (n, v) = match piece.split_once('=') {
            None => (piece, None),
            Some((n, v)) => (n.trim(), Some(v.trim())),
        };
        if !is_token(n) {
            return Err(format!("parameter {piece:?} has no valid name"));
        }
        let value = match v {
            None => None,
            Some(v) => {
                let inner = match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                    Some(q) => q.replace('\\', ""),
                    None => v.to_owned(),
                };
                if !is_token(&inner) {
                    return Err(format!("parameter {piece:?} has an invalid value"));
                }
                Some(inner)
            }
        };
        params.push((n.to_ascii_lowercase(), value));
    }
    Ok((name.to_owned(), params))
}

fn parse_params(params: &[Param]) -> Result<Params, String> {
    let mut p = Params::default();
    for (name, value) in params {
        let flag = |seen: &mut bool| -> Result<(), String> {
            if *seen {
                return Err(format!("{name} is repeated"));
            }
            if value.is_some() {
                return Err(format!("{name} has a value"));
            }
            *seen = true;
            Ok(())
        };
        let bits = |slot: &mut Option<Option<u8>>| -> Result<(), String> {
            if slot.is_some() {
                return Err(format!("{name} is repeated"));
            }
            *slot = Some(match value {
                None => None,
                Some(v) => Some(window_bits(v).ok_or_else(|| format!("{name}={v} is not 8 to 15"))?),
            });
            Ok(())
        };
        match name.as_str() {
            "server_no_context_takeover" => flag(&mut p.server_no_context_takeover)?,
            "client_no_context_takeover" => flag(&mut p.client_no_context_takeover)?,
            "server_max_window_bits" => bits(&mut p.server_max_window_bits)?,
            "client_max_window_bits" => bits(&mut p.client_max_window_bits)?,
            other => return Err(format!("unknown parameter {other:?}")),
        }
    }
    Ok(p)
}

/// A window size: a decimal integer from 8 to 15 without leading zeros.
fn window_bits(v: &str) -> Option<u8> {
    if v.is_empty() || v.len() > 2 || v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().filter(|b| (8..=15).contains(b))
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// How the checker compresses a message it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "deflate"), allow(dead_code))]
pub(crate) enum Encoding {
    /// A sync flush with the tail removed (RFC 7692 7.2.1), with the connection's compressor.
    Sync,
    /// On its own, ending with a final block (BFINAL; RFC 7692 7.2.3.4), then the byte the
    /// removal of the tail leaves.
    Final,
    /// On its own, in stored blocks (no compression; RFC 7692 7.2.3.3).
    Stored,
    /// Not compressed: RSV1 clear (RFC 7692 6: any message may be sent so).
    Plain,
}

/// One connection's compression state, from the agreement and the offers.
#[cfg(feature = "deflate")]
pub(crate) struct Codec {
    tx: flate2::Compress,
    tx_bits: u8,
    /// Reset the compressor after every message.
    tx_reset: bool,
    rx: flate2::Decompress,
    /// The server resets its context after every message, so the inflater does too.
    rx_reset: bool,
}

/// Without the `deflate` feature there is no codec: nothing is ever agreed.
#[cfg(not(feature = "deflate"))]
pub(crate) struct Codec;

#[cfg(not(feature = "deflate"))]
impl Codec {
    pub fn new(_agreed: &Agreed, _offers: &[Params]) -> Self {
        Self
    }

    pub fn encode(&mut self, payload: &[u8], _how: Encoding) -> Vec<u8> {
        payload.to_vec()
    }

    pub fn decode(&mut self, _payload: &[u8]) -> Result<Vec<u8>, String> {
        Err("this build has no deflate feature".to_owned())
    }
}

/// zlib's smallest raw window: a window of 8 is compressed with 9, whose matches reach at most
/// 250 bytes back.
#[cfg(feature = "deflate")]
fn zlib_bits(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

#[cfg(feature = "deflate")]
impl Codec {
    /// The state for an agreement reached on `offers`: the checker keeps its compression context
    /// only when no valid offer hinted it would not and the server did not forbid it; it
    /// compresses with the smallest window it offered or was given.
    pub fn new(agreed: &Agreed, offers: &[Params]) -> Self {
        let offered_bits = offers
            .iter()
            .filter_map(|o| o.client_max_window_bits.flatten())
            .min()
            .unwrap_or(15);
        let tx_bits = zlib_bits(agreed.client_max_window_bits.unwrap_or(15).min(offered_bits));
        let rx_bits = zlib_bits(agreed.server_max_window_bits.unwrap_or(15));
        Self {
            tx: flate2::Compress::new_with_window_bits(flate2::Compression::new(6), false, tx_bits),
            tx_bits,
            tx_reset: agreed.client_no_context_takeover
                || offers.iter().any(|o| o.client_no_context_takeover),
            rx: flate2::Decompress::new_with_window_bits(false, rx_bits),
            rx_reset: agreed.server_no_context_takeover,
        }
    }

    /// The compressed payload of one message.
    pub fn encode(&mut self, payload: &[u8], how: Encoding) -> Vec<u8> {
        match how {
            Encoding::Plain => payload.to_vec(),
            Encoding::Sync => {
                let out = sync_flush(&mut self.tx, payload);
                if self.tx_reset {
                    self.tx.reset();
                }
                out
            }
            // On their own: the next message starts a new context, which any inflater accepts.
            Encoding::Final => {
                self.tx.reset();
                let mut c =
                    flate2::Compress::new_with_window_bits(flate2::Compression::new(6), false, self.tx_bits);
                let mut out = finish(&mut c, payload);
                out.push(0x00);
                out
            }
            Encoding::Stored => {
                self.tx.reset();
                let mut c =
                    flate2::Compress::new_with_window_bits(flate2::Compression::new(0), false, self.tx_bits);
                sync_flush(&mut c, payload)
            }
        }
    }

    /// Inflates the payload of a compressed message from the server (the tail appended).
    pub fn decode(&mut self, payload: &[u8]) -> Result<Vec<u8>, String> {
        let mut input = Vec::with_capacity(payload.len() + TAIL.len());
        input.extend_from_slice(payload);
        input.extend_from_slice(&TAIL);
        let result = inflate(&mut self.rx, &input);
        let ended = matches!(result, Ok((_, true)));
        if self.rx_reset || ended || result.is_err() {
            self.rx.reset(false);
        }
        result.map(|(out, _)| out)
    }
}

/// Compresses `payload` with a sync flush and removes the tail.
#[cfg(feature = "deflate")]
fn sync_flush(c: &mut flate2::Compress, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload.len() / 1000 * 6 + 64);
    let mut input = payload;
    loop {
        let before = c.total_in();
        if c.compress_vec(input, &mut out, flate2::FlushCompress::Sync)
            .is_err()
        {
            break;
        }
        input = &input[(c.total_in() - before) as usize..];
        if input.is_empty() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    if out.is_empty() {
        // Nothing new since the last flush, so zlib writes nothing: the empty stored block of a
        // flush, by hand (the stream is at a byte boundary).
        out.extend_from_slice(&[0x00, 0x00, 0x00, 0xff, 0xff]);
    }
    if out.ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    }
    out
}

/// Compresses `payload` into a whole stream ending with a final block.
#[cfg(feature = "deflate")]
fn finish(c: &mut flate2::Compress, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 64);
    let mut input = payload;
    loop {
        let before = c.total_in();
        match c.compress_vec(input, &mut out, flate2::FlushCompress::Finish) {
            Ok(flate2::Status::StreamEnd) | Err(_) => break,
            Ok(_) => {}
        }
        input = &input[(c.total_in() - before) as usize..];
        out.reserve(out.capacity().max(64));
    }
    out
}

/// Inflates `input` whole: the output, and whether the stream ended with a final block.
#[cfg(feature = "deflate")]
fn inflate(d: &mut flate2::Decompress, mut input: &[u8]) -> Result<(Vec<u8>, bool), String> {
    let mut out = Vec::with_capacity((input.len() * 4).clamp(64, 1 << 20));
    loop {
        if out.len() == out.capacity() {
            if out.len() >= MAX_INFLATED {
                return Err(format!(
                    "sent a compressed message that inflates past {} MiB",
                    MAX_INFLATED >> 20
                ));
            }
            out.reserve(out.capacity().min(MAX_INFLATED - out.len()));
        }
        let (before_in, before_out) = (d.total_in(), out.len());
        let status = d
            .decompress_vec(input, &mut out, flate2::FlushDecompress::None)
            .map_err(|e| format!("sent compressed data that does not inflate ({e})"))?;
        let used = (d.total_in() - before_in) as usize;
        input = &input[used..];
        if status == flate2::Status::StreamEnd {
            return Ok((out, true));
        }
        if out.len() < out.capacity() {
            if input.is_empty() {
                return Ok((out, false));
            }
            if used == 0 && out.len() == before_out {
                return Err("sent compressed data that does not inflate (no progress)".to_owned());
            }
        }
    }
}

/// `payload` compressed on its own with a small window (valid under any agreement): for frames
/// built before the connection opens.
#[cfg(feature = "deflate")]
pub(crate) fn compress_alone(payload: &[u8]) -> Vec<u8> {
    let mut c = flate2::Compress::new_with_window_bits(flate2::Compression::new(6), false, 9);
    sync_flush(&mut c, payload)
}

/// Each piece compressed in turn by one compressor with a sync flush: the compressed pieces, each
/// ending with the tail but the last (a message compressed piece by piece, RFC 7692 7.2.3.5 and
/// 7.2.3.6). A small window: valid under any agreement.
#[cfg(feature = "deflate")]
pub(crate) fn compress_pieces(pieces: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut c = flate2::Compress::new_with_window_bits(flate2::Compression::new(6), false, 9);
    let mut out: Vec<Vec<u8>> = pieces
        .iter()
        .map(|p| {
            let mut z = sync_flush(&mut c, p);
            z.extend_from_slice(&TAIL);
            z
        })
        .collect();
    if let Some(last) = out.last_mut() {
        last.truncate(last.len() - TAIL.len());
    }
    out
}

/// The compressed payload of a message of `total` bytes of `byte`, made of independently
/// compressed pieces of at most 1 MiB (cheap to build at any size, about 1000:1).
#[cfg(feature = "deflate")]
pub(crate) fn bomb(byte: u8, total: usize) -> Vec<u8> {
    const PIECE: usize = 1 << 20;
    let piece = |n: usize| {
        let mut z = compress_alone(&vec![byte; n]);
        z.extend_from_slice(&TAIL);
        z
    };
    let whole = piece(PIECE.min(total));
    let mut out = Vec::with_capacity(whole.len() * (total / PIECE + 2));
    for _ in 0..total / PIECE {
        out.extend_from_slice(&whole);
    }
    if !total.is_multiple_of(PIECE) || total == 0 {
        out.extend_from_slice(&piece(total % PIECE));
    }
    out.truncate(out.len() - TAIL.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offers(v: &[&str]) -> Vec<Params> {
        valid_offers(&v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    fn judge(answer: &str, offered: &[&str]) -> Result<Option<String>, String> {
        judge_answer(&[answer.as_bytes()], &offers(offered)).map(|a| a.map(|a| a.to_string()))
    }

    #[test]
    fn offers_are_read_as_the_rfc_says() {
        assert_eq!(offers(&["permessage-deflate"]).len(), 1);
        assert_eq!(
            offers(&["x-foo, permessage-deflate; client_max_window_bits"]).len(),
            1
        );
        assert_eq!(
            offers(&["permessage-deflate; server_max_window_bits=\"10\""])[0].server_max_window_bits,
            Some(Some(10))
        );
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=08",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; foo",
            "permessage-deflate;",
            "x-webkit-deflate-frame",
        ] {
            assert!(offers(&[bad]).is_empty(), "{bad}");
        }
    }

    #[test]
    fn answers_are_judged_against_the_offers() {
        assert_eq!(judge("", &["permessage-deflate"]), Ok(None));
        assert_eq!(
            judge(
                "permessage-deflate; server_no_context_takeover",
                &["permessage-deflate"]
            )
            .unwrap(),
            Some("permessage-deflate; server_no_context_takeover".to_owned())
        );
        assert!(judge("permessage-deflate", &["permessage-deflate; foo"]).is_err());
        assert!(
            judge(
                "permessage-deflate",
                &["permessage-deflate; server_no_context_takeover"]
            )
            .is_err()
        );
        assert!(
            judge(
                "permessage-deflate; client_max_window_bits=10",
                &["permessage-deflate"]
            )
            .is_err()
        );
        assert!(
            judge(
                "permessage-deflate; client_max_window_bits=12",
                &["permessage-deflate; client_max_window_bits=10"]
            )
            .is_err()
        );
        assert!(
            judge(
                "permessage-deflate; client_max_window_bits",
                &["permessage-deflate; client_max_window_bits"]
            )
            .is_err()
        );
        assert!(
            judge(
                "permessage-deflate",
                &["permessage-deflate; server_max_window_bits=10"]
            )
            .is_err()
        );
        assert!(
            judge(
                "permessage-deflate; server_max_window_bits=9",
                &["permessage-deflate; server_max_window_bits=10"]
            )
            .is_ok()
        );
        assert!(judge("x-foo", &["permessage-deflate"]).is_err());
        assert!(judge("permessage-deflate, permessage-deflate", &["permessage-deflate"]).is_err());
        // Several offers: fitting one is enough.
        assert!(
            judge(
                "permessage-deflate; client_max_window_bits=10",
                &["permessage-deflate; server_max_window_bits=7, permessage-deflate; client_max_window_bits"]
            )
            .is_ok()
        );
    }

    #[cfg(feature = "deflate")]
    #[test]
    fn the_codec_round_trips_each_encoding() {
        let agreed = Agreed::default();
        let mut c = Codec::new(&agreed, &[Params::default()]);
        let msg = b"Hello, Hello, Hello, permessage-deflate".repeat(50);
        // With context takeover both ways, the inflater shares the compressor's context.
        let mut d = Codec::new(&agreed, &[Params::default()]);
        let first = c.encode(&msg, Encoding::Sync);
        let second = c.encode(&msg, Encoding::Sync);
        assert!(second.len() < first.len() && !first.ends_with(&TAIL));
        assert_eq!(d.decode(&first).unwrap(), msg);
        assert_eq!(d.decode(&second).unwrap(), msg);
        for how in [Encoding::Final, Encoding::Stored, Encoding::Sync] {
            let z = c.encode(&msg, how);
            assert!(!z.ends_with(&TAIL));
            assert_eq!(Codec::new(&agreed, &[]).decode(&z).unwrap(), msg, "{how:?}");
        }
        // RFC 7692 7.2.3.1 and 7.2.3.4.
        let mut d = Codec::new(&agreed, &[Params::default()]);
        assert_eq!(
            d.decode(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]).unwrap(),
            b"Hello"
        );
        assert_eq!(
            d.decode(&[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00])
                .unwrap(),
            b"Hello"
        );
        assert_eq!(d.decode(&compress_alone(b"")).unwrap(), b"");
        assert!(d.decode(&[0x06, 0x00]).is_err());
        let mut d = Codec::new(&agreed, &[Params::default()]);
        let pieces = compress_pieces(&[b"Hel", b"", b"lo"]);
        assert_eq!(d.decode(&pieces.concat()).unwrap(), b"Hello");
        let z = bomb(b'a', (3 << 20) + 5);
        assert!(z.len() < 8 << 10, "{}", z.len());
        assert_eq!(d.decode(&z).unwrap(), vec![b'a'; (3 << 20) + 5]);
    }
}
