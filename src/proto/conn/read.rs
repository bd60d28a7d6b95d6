//! The input side of a [`Connection`]: frames in, events out, with the automatic replies (a pong,
//! the echo of a Close frame, the Close frame that fails the connection) written on the way.

use std::borrow::Cow;

use super::{Closing, Connection, Event, Message, MessageKind, Read, Role};
use crate::proto::close::{MAX_CLOSE_REASON, parse_close_payload};
use crate::proto::close_code::CloseCode;
use crate::proto::deflate::DeflatePool;
#[cfg(feature = "deflate")]
use crate::proto::deflate::{RSV1, TAIL};
use crate::proto::error::Error;
use crate::proto::frame::{FrameHeader, OpCode, decode_header};
use crate::proto::mask::apply_mask;
use crate::proto::utf8::validate;

/// Bytes a compressed message may inflate by in one call of [`Connection::read`] (about: the
/// compressed input is taken a kilobyte at a time): past it the call returns, having consumed
/// what it inflated, and is called again on the rest. A server lets its other connections
/// have their turn in between, so that a message that inflates to many megabytes does not
/// hold up the others while it does.
pub const MAX_INFLATE_PER_READ: usize = 1 << 20;

/// How much of the assembly buffer is reserved up front for a frame of announced length.
const INITIAL_RESERVE: usize = 64 << 10;

/// A data frame whose payload is still arriving.
#[derive(Debug, Clone, Copy)]
pub(super) struct InFrame {
    remaining: u64,
    mask: Option<[u8; 4]>,
    /// Payload bytes of this frame already read, modulo 4: where in the key unmasking goes on.
    /// (One byte, not a count: an idle connection keeps this struct.)
    phase: u8,
    fin: bool,
}

impl Connection {
    /// Consumes bytes received from the peer and returns at most one event.
    ///
    /// Automatic replies (pong, close echo, the Close frame of a failure) are appended to `out`.
    /// On a protocol error the Close frame with the error's code is written to `out` and the error
    /// is returned; the connection is then failed and ignores further input. After the peer's Close
    /// frame, further input is ignored too (consumed, no events).
    ///
    /// With permessage-deflate, zlib state for the message comes from a new [`DeflatePool`]
    /// each call: use [`Connection::read_with`] to reuse it.
    pub fn read<'b>(&mut self, buf: &'b mut [u8], out: &mut Vec<u8>) -> Result<Read<'b>, Error> {
        self.read_with(buf, out, &mut DeflatePool::new())
    }

    /// [`Connection::read`], borrowing zlib state from `pool` for a compressed message (from its
    /// first frame to its last) and giving it back when the message is done.
    pub fn read_with<'b>(
        &mut self,
        buf: &'b mut [u8],
        out: &mut Vec<u8>,
        pool: &mut DeflatePool,
    ) -> Result<Read<'b>, Error> {
        self.read_limited(buf, out, pool, MAX_INFLATE_PER_READ)
    }

    /// [`Connection::read_with`], inflating about `inflate` bytes of a compressed message at
    /// most in this call (see [`MAX_INFLATE_PER_READ`]). With 0 nothing is inflated: the call
    /// returns where the next compressed payload byte starts, having consumed what came before
    /// it. A server that shares one allowance among its connections for each turn of its loop
    /// passes what is left of it, so that inflating never holds up the others for long.
    pub fn read_limited<'b>(
        &mut self,
        buf: &'b mut [u8],
        out: &mut Vec<u8>,
        pool: &mut DeflatePool,
        inflate: usize,
    ) -> Result<Read<'b>, Error> {
        let result = match self.read_inner(buf, out, pool, inflate) {
            Ok(r) => Ok(r),
            Err(e) => {
                self.fail(&e, out);
                Err(e)
            }
        };
        #[cfg(feature = "deflate")]
        let closed = self.is_closed();
        #[cfg(feature = "deflate")]
        if let Some(d) = self.deflate.as_mut() {
            if closed {
                d.release(pool);
            } else if d.inflating && self.message.is_none() {
                d.end_message(pool);
            }
        }
        result
    }

    #[cfg_attr(not(feature = "deflate"), allow(unused_variables))]
    fn read_inner<'b>(
        &mut self,
        buf: &'b mut [u8],
        out: &mut Vec<u8>,
        pool: &mut DeflatePool,
        inflate: usize,
    ) -> Result<Read<'b>, Error> {
        if self.is_closed() {
            return Ok(Read {
                consumed: buf.len(),
                event: None,
            });
        }
        let mut pos = 0;
        // What compressed input may inflate to in this call.
        let mut inflate_left = inflate;
        loop {
            if let Some(frame) = self.frame {
                if inflate_left == 0 && self.inflating() && frame.remaining > 0 {
                    // No allowance left: the payload waits for the next call.
                    return Ok(Read {
                        consumed: pos,
                        event: None,
                    });
                }
                let n = usize::try_from(frame.remaining).map_or(buf.len() - pos, |r| r.min(buf.len() - pos));
                let chunk = &mut buf[pos..pos + n];
                let phase = usize::from(frame.phase);
                if let Some(key) = frame.mask {
                    apply_mask(chunk, key, phase);
                }
                let used = self.take_payload(chunk, &mut inflate_left)?;
                if used < n
                    && let Some(key) = frame.mask
                {
                    // The inflation allowance ran out: the rest is presented again, masked as
                    // it came.
                    apply_mask(&mut chunk[used..], key, phase + used);
                }
                pos += used;
                let remaining = frame.remaining - used as u64;
                if remaining > 0 {
                    self.frame = Some(InFrame {
                        remaining,
                        phase: ((phase + used) % 4) as u8,
                        ..frame
                    });
                    return Ok(Read {
                        consumed: pos,
                        event: None,
                    });
                }
                self.frame = None;
                if frame.fin {
                    let message = self.finish_message()?;
                    return Ok(Read {
                        consumed: pos,
                        event: Some(Event::Message(message)),
                    });
                }
                continue;
            }

            let Some((header, header_len)) = decode_header(&buf[pos..])? else {
                return Ok(Read {
                    consumed: pos,
                    event: None,
                });
            };
            self.check_header(&header)?;
            let available = buf.len() - pos - header_len;

            if header.opcode.is_control() {
                // At most 125 bytes: wait until the whole frame is there.
                let len = header.len as usize;
                if available < len {
                    return Ok(Read {
                        consumed: pos,
                        event: None,
                    });
                }
                let start = pos + header_len;
                let consumed = start + len;
                // Split the borrow: the payload lives until the event is used.
                let payload = &mut buf[start..consumed];
                if let Some(key) = header.mask {
                    apply_mask(payload, key, 0);
                }
                let payload: &'b [u8] = payload;
                let event = self.control(header.opcode, payload, out)?;
                return Ok(Read {
                    consumed,
                    event: Some(event),
                });
            }

            let compressed = self.is_compressed(&header);
            if compressed && inflate_left == 0 && self.message.is_none() && header.len > 0 {
                // No allowance left: a compressed message does not even begin (nor borrow zlib
                // state) before the next call; its first frame waits whole.
                return Ok(Read {
                    consumed: pos,
                    event: None,
                });
            }
            let kind = match (header.opcode, self.message) {
                (OpCode::Continuation, None) => return Err(Error::UnexpectedContinuation),
                (OpCode::Continuation, Some(kind)) => kind,
                (OpCode::Text | OpCode::Binary, Some(_)) => return Err(Error::ExpectedContinuation),
                (OpCode::Text, None) => MessageKind::Text,
                _ => MessageKind::Binary,
            };
            if header.len > self.config.max_frame_size as u64 {
                return Err(Error::FrameTooLarge {
                    len: header.len,
                    max: self.config.max_frame_size,
                });
            }
            let total = self.buffer.len() as u64 + header.len;
            // A compressed message is measured as it inflates.
            if !compressed && total > self.config.max_message_size as u64 {
                return Err(Error::MessageTooLarge {
                    len: total,
                    max: self.config.max_message_size,
                });
            }

            // The common case: a whole message in one frame, already in the input. No copy.
            if header.fin && self.message.is_none() && !compressed && available as u64 >= header.len {
                let start = pos + header_len;
                let end = start + header.len as usize;
                let payload = &mut buf[start..end];
                if let Some(key) = header.mask {
                    apply_mask(payload, key, 0);
                }
                let payload: &'b [u8] = payload;
                let message = match kind {
                    MessageKind::Binary => Message::Binary(Cow::Borrowed(payload)),
                    MessageKind::Text => Message::Text(Cow::Borrowed(
                        validate(payload).map_err(|e| Error::InvalidUtf8 { offset: e.offset })?,
                    )),
                };
                return Ok(Read {
                    consumed: end,
                    event: Some(Event::Message(message)),
                });
            }

            // Otherwise the frame is streamed into the assembly buffer.
            if self.message.is_none() {
                self.message = Some(kind);
                self.utf8.reset();
                #[cfg(feature = "deflate")]
                if let Some(d) = self.deflate.as_mut()
                    && compressed
                {
                    d.begin_message(pool);
                }
            }
            let want = (self.buffer.len() as u64 + header.len.min(INITIAL_RESERVE as u64)) as usize;
            if !compressed && self.buffer.capacity() < want {
                self.buffer.reserve_exact(want - self.buffer.len());
            }
            pos += header_len;
            self.frame = Some(InFrame {
                remaining: header.len,
                mask: header.mask,
                phase: 0,
                fin: header.fin,
            });
            if header.len == 0 {
                continue;
            }
            if pos == buf.len() {
                return Ok(Read {
                    consumed: pos,
                    event: None,
                });
            }
        }
    }

    /// Takes a piece of the open message's payload (unmasked): inflated onto the assembly buffer
    /// if the message is compressed (within `inflate_left` bytes of output, about), appended
    /// otherwise; text is validated on the way. Returns how much of `chunk` was taken: all of
    /// it, unless the inflation allowance ran out first.
    #[cfg_attr(not(feature = "deflate"), allow(unused_variables))]
    fn take_payload(&mut self, chunk: &[u8], inflate_left: &mut usize) -> Result<usize, Error> {
        let text = self.message == Some(MessageKind::Text);
        #[cfg(feature = "deflate")]
        if let Some(d) = self.deflate.as_mut()
            && d.inflating
        {
            let utf8 = &mut self.utf8;
            let before = self.buffer.len();
            let used = d.inflate(
                chunk,
                &mut self.buffer,
                self.config.max_message_size,
                *inflate_left,
                &mut |piece| {
                    if text {
                        utf8.feed(piece)
                            .map_err(|e| Error::InvalidUtf8 { offset: e.offset })?;
                    }
                    Ok(())
                },
            )?;
            *inflate_left = inflate_left.saturating_sub(self.buffer.len() - before);
            return Ok(used);
        }
        if text {
            self.utf8
                .feed(chunk)
                .map_err(|e| Error::InvalidUtf8 { offset: e.offset })?;
        }
        self.append(chunk);
        Ok(chunk.len())
    }

    /// Whether the message being received is compressed (its payload is inflated).
    fn inflating(&self) -> bool {
        #[cfg(feature = "deflate")]
        if let Some(d) = self.deflate.as_ref() {
            return d.inflating;
        }
        false
    }

    /// Whether a data frame belongs to a compressed message: its own RSV1 for a first frame, the
    /// open message's for a continuation.
    fn is_compressed(&self, header: &FrameHeader) -> bool {
        #[cfg(feature = "deflate")]
        if let Some(d) = self.deflate.as_ref() {
            return match header.opcode {
                OpCode::Continuation => d.inflating,
                _ => header.rsv & RSV1 != 0,
            };
        }
        let _ = header;
        false
    }

    /// Appends to the assembly buffer without ever reserving past `max_message_size` (the frame
    /// header checks guarantee the bytes themselves fit).
    fn append(&mut self, chunk: &[u8]) {
        let need = self.buffer.len() + chunk.len();
        if need > self.buffer.capacity() {
            let target = (self.buffer.capacity() * 2)
                .max(need)
                .min(self.config.max_message_size.max(need));
            self.buffer.reserve_exact(target - self.buffer.len());
        }
        self.buffer.extend_from_slice(chunk);
    }

    /// The checks that depend on this connection: RSV bits, mask bit per role.
    fn check_header(&self, header: &FrameHeader) -> Result<(), Error> {
        #[cfg_attr(not(feature = "deflate"), allow(unused_mut))]
        let mut allowed = self.config.allowed_rsv;
        #[cfg(feature = "deflate")]
        if self.deflate.is_some() {
            // RSV1 marks the first frame of a compressed message, and only that frame.
            if header.opcode == OpCode::Continuation && header.rsv & RSV1 != 0 {
                return Err(Error::CompressedContinuation);
            }
            allowed |= RSV1;
        }
        let rsv = if header.opcode.is_control() {
            header.rsv
        } else {
            header.rsv & !allowed
        };
        if rsv != 0 {
            return Err(Error::ReservedBits(header.rsv));
        }
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => Err(Error::UnmaskedFrame),
            (Role::Client, true) => Err(Error::MaskedFrame),
            _ => Ok(()),
        }
    }

    /// Completes the open message: the end of a compressed one (its removed tail), final UTF-8
    /// check, and hands over the buffer.
    fn finish_message<'b>(&mut self) -> Result<Message<'b>, Error> {
        #[cfg(feature = "deflate")]
        if self.deflate.as_ref().is_some_and(|d| d.inflating) {
            // The tail adds no output of its own: no allowance is needed to take it whole.
            let mut unlimited = usize::MAX;
            self.take_payload(&TAIL, &mut unlimited)?;
        }
        let kind = self.message.take();
        let data = std::mem::take(&mut self.buffer);
        Ok(match kind {
            Some(MessageKind::Text) => {
                self.utf8
                    .finish()
                    .map_err(|e| Error::InvalidUtf8 { offset: e.offset })?;
                // Every byte went through `self.utf8` already, so this cannot fail; it is the
                // price of owning the text without `unsafe` (off the single-frame path, which
                // validates once and borrows).
                let text = String::from_utf8(data).map_err(|e| Error::InvalidUtf8 {
                    offset: e.utf8_error().valid_up_to() as u64,
                })?;
                Message::Text(Cow::Owned(text))
            }
            _ => Message::Binary(Cow::Owned(data)),
        })
    }

    fn control<'b>(
        &mut self,
        opcode: OpCode,
        payload: &'b [u8],
        out: &mut Vec<u8>,
    ) -> Result<Event<'b>, Error> {
        Ok(match opcode {
            OpCode::Ping => {
                if self.config.auto_pong {
                    self.write_frame(OpCode::Pong, true, payload, out);
                }
                Event::Ping(payload)
            }
            OpCode::Pong => Event::Pong(payload),
            _ => {
                let frame = parse_close_payload(payload)?;
                // A Close frame received is answered at once (unless this end's went first), so
                // both ends' frames are then sent: the handshake is complete either way.
                if self.closing == Closing::Open {
                    let reply: &[u8] = if frame.code == CloseCode::NoStatus {
                        &[]
                    } else {
                        &payload[..2]
                    };
                    self.write_frame(OpCode::Close, true, reply, out);
                }
                self.closing = Closing::Closed;
                // Whatever was half-received is abandoned.
                self.frame = None;
                self.message = None;
                self.buffer = Vec::new();
                Event::Close(frame)
            }
        })
    }

    /// Fails the connection (RFC 6455 section 7.1.7): sends a Close frame with the error's code
    /// unless one was sent already, and drops any partial message.
    fn fail(&mut self, e: &Error, out: &mut Vec<u8>) {
        let was_open = self.closing == Closing::Open;
        self.closing = Closing::Failed;
        self.frame = None;
        self.message = None;
        self.buffer = Vec::new();
        if was_open {
            let mut payload = [0u8; 2 + MAX_CLOSE_REASON];
            let reason = e.reason().as_bytes();
            payload[..2].copy_from_slice(&e.close_code().as_u16().to_be_bytes());
            payload[2..2 + reason.len()].copy_from_slice(reason);
            self.write_frame(OpCode::Close, true, &payload[..2 + reason.len()], out);
        }
    }
}
