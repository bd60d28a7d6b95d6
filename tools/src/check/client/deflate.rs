//! permessage-deflate on the checker's side of a client case: the answer to the client's offers
//! (the core's server negotiation), and the checker's compressor and inflater for the
//! connection. Without the `deflate` feature nothing is ever agreed (the cases are SKIPPED).

/// The largest message the checker inflates from a client: the limit cases' 16 MiB and room to
/// spare ([`super::conn::MAX_FRAME`]).
#[cfg_attr(not(feature = "deflate"), allow(dead_code))]
const MAX_INFLATED: usize = super::conn::MAX_FRAME;

/// What was agreed for one connection, and its codec.
#[cfg(feature = "deflate")]
pub(crate) struct Agreement {
    /// The `Sec-WebSocket-Extensions` value of the 101.
    pub answer: String,
    tx: c10k::proto::deflate::Compressor,
    tx_reset: bool,
    rx: c10k::proto::deflate::Decompressor,
    rx_reset: bool,
}

/// Without the `deflate` feature there is no codec: nothing is ever agreed.
#[cfg(not(feature = "deflate"))]
pub(crate) struct Agreement {
    pub answer: String,
}

#[cfg(feature = "deflate")]
impl Agreement {
    /// The answer to the first acceptable offer among `values` (raw `Sec-WebSocket-Extensions`
    /// values), with context takeover both ways when `takeover` (else none either way); `None`
    /// when no offer can be accepted.
    pub fn new(values: &[String], takeover: bool) -> Option<Self> {
        use c10k::proto::deflate::{Compressor, Decompressor, DeflateConfig, negotiate};
        use c10k::proto::role::Role;
        let config = DeflateConfig {
            compress_context_takeover: takeover,
            decompress_context_takeover: takeover,
            // Every message compressed, however short.
            threshold: 0,
            ..DeflateConfig::default()
        };
        let params = negotiate(values.iter().map(|v| v.as_bytes()), &config)?;
        let n = params.negotiated(Role::Server, &config);
        Some(Self {
            answer: params.to_string(),
            tx: Compressor::new(n.compress_window_bits, n.level),
            tx_reset: !n.compress_context_takeover,
            rx: Decompressor::new(n.decompress_window_bits),
            rx_reset: !n.decompress_context_takeover,
        })
    }

    /// The compressed payload of one message (the tail removed).
    pub fn compress(&mut self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(payload.len() / 2 + 16);
        self.tx.compress_message(payload, &mut out);
        if self.tx_reset {
            self.tx.reset();
        }
        out
    }

    /// Inflates the payload of a compressed message from the client.
    pub fn inflate(&mut self, payload: &[u8]) -> Result<Vec<u8>, String> {
        use c10k::proto::deflate::{InflateError, TAIL};
        let mut out = Vec::new();
        let mut none = |_: &[u8]| Ok::<(), InflateError>(());
        let result = self
            .rx
            .inflate(payload, &mut out, MAX_INFLATED, &mut none)
            .and_then(|_| self.rx.inflate(&TAIL, &mut out, MAX_INFLATED, &mut none));
        if self.rx_reset || self.rx.ended() || result.is_err() {
            self.rx.reset();
        }
        match result {
            Ok(_) => Ok(out),
            Err(InflateError::Invalid) => Err("compressed data that does not inflate".to_owned()),
            Err(InflateError::TooLarge { .. }) => Err(format!(
                "a compressed message that inflates past {} MiB",
                MAX_INFLATED >> 20
            )),
        }
    }
}

#[cfg(not(feature = "deflate"))]
impl Agreement {
    pub fn new(_values: &[String], _takeover: bool) -> Option<Self> {
        None
    }

    pub fn compress(&mut self, payload: &[u8]) -> Vec<u8> {
        payload.to_vec()
    }

    pub fn inflate(&mut self, _payload: &[u8]) -> Result<Vec<u8>, String> {
        Err("this build has no deflate feature".to_owned())
    }
}
