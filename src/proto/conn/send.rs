//! The commands of a [`Connection`]: messages, fragments, pings, pongs and the Close frame
//! encoded into the caller's buffer, or refused with an [`InvalidSend`] when the protocol forbids
//! them.

use super::{Closing, Connection, MessageKind};
use crate::proto::close::MAX_CLOSE_REASON;
use crate::proto::close_code::CloseCode;
use crate::proto::deflate::DeflatePool;
#[cfg(feature = "deflate")]
use crate::proto::deflate::RSV1;
use crate::proto::error::InvalidSend;
use crate::proto::frame::{HeaderBuf, MAX_CONTROL_PAYLOAD, OpCode, encode_header};
use crate::proto::mask::apply_mask;

impl Connection {
    /// Sends a whole message in one frame.
    ///
    /// With permessage-deflate, a message at or above the agreed threshold is compressed, with
    /// zlib state from a new [`DeflatePool`] (or the connection's own with context takeover): use
    /// [`Connection::send_with`] to reuse it.
    pub fn send(&mut self, kind: MessageKind, payload: &[u8], out: &mut Vec<u8>) -> Result<(), InvalidSend> {
        self.send_with(kind, payload, out, &mut DeflatePool::new())
    }

    /// [`Connection::send`], borrowing a compressor from `pool` when the message is compressed
    /// without context takeover. Such a message is sent plain (RSV1 clear) when compressing did
    /// not make it shorter.
    #[cfg_attr(not(feature = "deflate"), allow(unused_variables))]
    pub fn send_with(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        out: &mut Vec<u8>,
        pool: &mut DeflatePool,
    ) -> Result<(), InvalidSend> {
        self.check_open()?;
        if self.sending_fragmented {
            return Err(InvalidSend::Fragmentation);
        }
        #[cfg(feature = "deflate")]
        if let Some(d) = self.deflate.as_mut()
            && d.compresses(payload.len())
        {
            let mask = self.keys.as_mut().map(|k| k());
            if d.write_message(kind.opcode(), payload, mask, out, pool) {
                return Ok(());
            }
        }
        self.write_frame(kind.opcode(), true, payload, out);
        Ok(())
    }

    /// Sends a whole message in frames of at most `fragment` payload bytes (at least one frame).
    /// With permessage-deflate and a message at or above the threshold, the compressed payload is
    /// what is split, and RSV1 is set on the first frame only.
    #[cfg_attr(not(feature = "deflate"), allow(unused_variables))]
    pub fn send_fragmented(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        fragment: usize,
        out: &mut Vec<u8>,
        pool: &mut DeflatePool,
    ) -> Result<(), InvalidSend> {
        self.check_open()?;
        if self.sending_fragmented {
            return Err(InvalidSend::Fragmentation);
        }
        #[cfg_attr(not(feature = "deflate"), allow(unused_mut))]
        let (mut data, mut rsv) = (std::borrow::Cow::Borrowed(payload), 0);
        #[cfg(feature = "deflate")]
        if let Some(d) = self.deflate.as_mut()
            && d.compresses(payload.len())
        {
            data = std::borrow::Cow::Owned(d.compress(payload, pool));
            rsv = RSV1;
        }
        let mut chunks = data.chunks(fragment.max(1)).peekable();
        if data.is_empty() {
            self.write_frame_rsv(kind.opcode(), true, rsv, &[], out);
        }
        let mut first = true;
        while let Some(chunk) = chunks.next() {
            let fin = chunks.peek().is_none();
            if first {
                self.write_frame_rsv(kind.opcode(), fin, rsv, chunk, out);
            } else {
                self.write_frame(OpCode::Continuation, fin, chunk, out);
            }
            first = false;
        }
        Ok(())
    }

    /// Sends one fragment of a message: `Some(kind)` starts a message, `None` continues the open
    /// one, and `fin` ends it. Control frames may be sent between fragments.
    pub fn send_fragment(
        &mut self,
        kind: Option<MessageKind>,
        payload: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), InvalidSend> {
        self.check_open()?;
        let opcode = self.fragment_opcode(kind)?;
        self.sending_fragmented = !fin;
        self.write_frame(opcode, fin, payload, out);
        Ok(())
    }

    /// The header of a whole-message frame of `len` bytes, for a server that writes the payload
    /// itself (for example with vectored I/O straight from the application's buffer).
    ///
    /// In the client role the payload must be masked with the returned key before it is sent.
    /// The frame is never compressed (RSV1 clear), which permessage-deflate allows for any
    /// message; use [`Connection::compresses`] and [`Connection::send_with`] to compress.
    pub fn frame_header(
        &mut self,
        kind: MessageKind,
        len: usize,
    ) -> Result<(HeaderBuf, Option<[u8; 4]>), InvalidSend> {
        self.check_open()?;
        if self.sending_fragmented {
            return Err(InvalidSend::Fragmentation);
        }
        let mask = self.keys.as_mut().map(|k| k());
        Ok((encode_header(true, 0, kind.opcode(), len as u64, mask), mask))
    }

    /// Sends a ping with up to 125 bytes of payload. Allowed after this end's Close frame, until
    /// the peer's arrives.
    pub fn ping(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), InvalidSend> {
        self.control_command(OpCode::Ping, payload, out)
    }

    /// Sends a pong (unsolicited, as a heartbeat, or to answer a ping when `auto_pong` is off).
    /// Allowed after this end's Close frame, until the peer's arrives.
    pub fn pong(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), InvalidSend> {
        self.control_command(OpCode::Pong, payload, out)
    }

    /// Starts the closing handshake. [`CloseCode::NoStatus`] sends an empty Close frame (and then
    /// `reason` must be empty); any other code must be sendable.
    pub fn close(&mut self, code: CloseCode, reason: &str, out: &mut Vec<u8>) -> Result<(), InvalidSend> {
        self.check_open()?;
        if reason.len() > MAX_CLOSE_REASON {
            return Err(InvalidSend::ReasonTooLong);
        }
        let mut payload = [0u8; 2 + MAX_CLOSE_REASON];
        let len = if code == CloseCode::NoStatus {
            if !reason.is_empty() {
                return Err(InvalidSend::CodeNotSendable);
            }
            0
        } else {
            if !code.is_sendable() {
                return Err(InvalidSend::CodeNotSendable);
            }
            payload[..2].copy_from_slice(&code.as_u16().to_be_bytes());
            payload[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
            2 + reason.len()
        };
        self.closing = Closing::CloseSent;
        self.write_frame(OpCode::Close, true, &payload[..len], out);
        Ok(())
    }

    /// Fails the connection for a reason of this end's own, not a protocol error: a limit of
    /// the server (a message too slow, control frames too fast, memory). As on a protocol
    /// error (RFC 6455 section 7.1.7), the Close frame with `code` is written unless a Close
    /// frame was sent already, the message being received is dropped (its buffer freed at
    /// once), and input is ignored from then on; [`Connection::should_close_tcp`] says to
    /// close once the frame is out. `reason` is cut to what a Close frame carries. Returns the
    /// dropped message's buffer (empty when there was none), for the caller to free where it
    /// likes: freeing many megabytes takes time a server may not want to spend on its loop.
    pub fn abort(&mut self, code: CloseCode, reason: &str, out: &mut Vec<u8>) -> Vec<u8> {
        let was_open = self.closing == Closing::Open;
        self.closing = Closing::Failed;
        self.frame = None;
        self.message = None;
        let dropped = std::mem::take(&mut self.buffer);
        if was_open && code.is_sendable() {
            let mut cut = reason.len().min(MAX_CLOSE_REASON);
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            let mut payload = [0u8; 2 + MAX_CLOSE_REASON];
            payload[..2].copy_from_slice(&code.as_u16().to_be_bytes());
            payload[2..2 + cut].copy_from_slice(&reason.as_bytes()[..cut]);
            self.write_frame(OpCode::Close, true, &payload[..2 + cut], out);
        }
        dropped
    }

    fn check_open(&self) -> Result<(), InvalidSend> {
        if self.closing != Closing::Open {
            Err(InvalidSend::Closed)
        } else {
            Ok(())
        }
    }

    fn fragment_opcode(&self, kind: Option<MessageKind>) -> Result<OpCode, InvalidSend> {
        match (kind, self.sending_fragmented) {
            (Some(k), false) => Ok(k.opcode()),
            (None, true) => Ok(OpCode::Continuation),
            _ => Err(InvalidSend::Fragmentation),
        }
    }

    fn control_command(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), InvalidSend> {
        // Pings and pongs may follow this end's Close frame (only data frames may not, RFC 6455
        // section 5.5.1); once the peer's Close arrived, or the connection failed, nothing may.
        if self.is_closed() {
            return Err(InvalidSend::Closed);
        }
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(InvalidSend::ControlTooLong);
        }
        self.write_frame(opcode, true, payload, out);
        Ok(())
    }

    /// Appends one frame to `out`, masked in the client role.
    pub(super) fn write_frame(&mut self, opcode: OpCode, fin: bool, payload: &[u8], out: &mut Vec<u8>) {
        self.write_frame_rsv(opcode, fin, 0, payload, out);
    }

    /// Appends one frame with the RSV bits `rsv` to `out`, masked in the client role.
    fn write_frame_rsv(&mut self, opcode: OpCode, fin: bool, rsv: u8, payload: &[u8], out: &mut Vec<u8>) {
        let mask = self.keys.as_mut().map(|k| k());
        let header = encode_header(fin, rsv, opcode, payload.len() as u64, mask);
        out.reserve(header.as_bytes().len() + payload.len());
        out.extend_from_slice(header.as_bytes());
        let start = out.len();
        out.extend_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(&mut out[start..], key, 0);
        }
    }
}
