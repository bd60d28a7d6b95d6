//! Reading a server's frames without holding them: headers are decoded by the protocol core,
//! payloads are skipped as they stream past, and only what an attacker needs is kept (control
//! frames, and data messages up to [`KEEP`] bytes, for the bystanders' echoes and the pubsub
//! replies). An attacker that drains 16 MB of echoes holds a few bytes.
//!
//! The server is trusted to frame correctly only as far as the header decoder checks: a header
//! it refuses ends the reading of that connection with its error.

use c10k::proto::frame::{FrameHeader, MAX_HEADER_LEN, OpCode, decode_header};
use c10k::proto::mask::apply_mask;

/// Data messages up to this size are kept whole; longer ones are only counted.
pub(crate) const KEEP: usize = 4096;

/// Something the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seen {
    /// A data message of `len` bytes; its bytes when it was at most [`KEEP`] long.
    Message { len: u64, bytes: Option<Vec<u8>> },
    /// A ping and its payload (to answer with a pong).
    Ping(Vec<u8>),
    /// A pong.
    Pong,
    /// A Close frame: its code (1005 when it had none) and reason.
    Close(u16, String),
}

/// The reading state of one connection's frames.
#[derive(Debug, Default)]
pub(crate) struct Skim {
    /// Bytes of a header that is not complete yet.
    head: Vec<u8>,
    /// The frame whose payload is streaming, and the payload bytes still to come.
    frame: Option<(FrameHeader, u64)>,
    /// Payload bytes read so far of that frame.
    offset: u64,
    /// The payload kept: a control frame's, or the message's while it stays small.
    body: Vec<u8>,
    /// The data message being received: its length so far, and whether it is still kept.
    message: Option<(u64, bool)>,
}

impl Skim {
    /// Reads `data`, appending what it completes to `seen`. Fails on a header the protocol
    /// core refuses (the connection is then read no further).
    pub(crate) fn feed(&mut self, mut data: &[u8], seen: &mut Vec<Seen>) -> Result<(), String> {
        while !data.is_empty() {
            if let Some((h, left)) = self.frame.as_mut() {
                let take = (*left).min(data.len() as u64) as usize;
                let keep = h.opcode.is_control() || self.message.is_some_and(|(_, kept)| kept);
                if keep {
                    let start = self.body.len();
                    self.body.extend_from_slice(&data[..take]);
                    if let Some(mask) = h.mask {
                        apply_mask(&mut self.body[start..], mask, (self.offset % 4) as usize);
                    }
                }
                *left -= take as u64;
                self.offset += take as u64;
                data = &data[take..];
                if *left == 0 {
                    self.end_frame(seen);
                }
                continue;
            }
            let had = self.head.len();
            let add = data.len().min(MAX_HEADER_LEN - had);
            self.head.extend_from_slice(&data[..add]);
            match decode_header(&self.head) {
                Ok(Some((h, hl))) => {
                    data = &data[hl - had..];
                    self.head.clear();
                    self.start_frame(h)?;
                    if h.len == 0 {
                        self.end_frame(seen);
                    }
                }
                Ok(None) => data = &data[add..],
                Err(e) => return Err(format!("the server sent a frame header that is not valid: {e}")),
            }
        }
        Ok(())
    }

    fn start_frame(&mut self, h: FrameHeader) -> Result<(), String> {
        self.offset = 0;
        if !h.opcode.is_control() {
            let (len, kept) = match (h.opcode, self.message) {
                (OpCode::Continuation, Some(m)) => m,
                (OpCode::Continuation, None) => {
                    return Err("the server sent a continuation frame outside a message".to_owned());
                }
                (_, Some(_)) => return Err("the server started a message inside another".to_owned()),
                _ => {
                    self.body.clear();
                    (0, true)
                }
            };
            let len = len.saturating_add(h.len);
            let kept = kept && len <= KEEP as u64;
            if !kept {
                self.body = Vec::new();
            }
            self.message = Some((len, kept));
        } else {
            // A control frame may come between two fragments: its payload goes after the
            // message's, and is taken off again at its end.
            self.offset = 0;
        }
        self.frame = Some((h, h.len));
        Ok(())
    }

    fn end_frame(&mut self, seen: &mut Vec<Seen>) {
        let Some((h, _)) = self.frame.take() else { return };
        match h.opcode {
            OpCode::Ping | OpCode::Pong | OpCode::Close => {
                let payload = self.body.split_off(self.body.len() - h.len as usize);
                seen.push(match h.opcode {
                    OpCode::Ping => Seen::Ping(payload),
                    OpCode::Pong => Seen::Pong,
                    _ => match payload.as_slice() {
                        [hi, lo, reason @ ..] => Seen::Close(
                            u16::from_be_bytes([*hi, *lo]),
                            String::from_utf8_lossy(reason).into_owned(),
                        ),
                        _ => Seen::Close(1005, String::new()),
                    },
                });
            }
            _ if h.fin => {
                if let Some((len, kept)) = self.message.take() {
                    let bytes = kept.then(|| std::mem::take(&mut self.body));
                    seen.push(Seen::Message { len, bytes });
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use c10k::proto::frame::encode_header;

    use super::*;

    fn frame(fin: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut f = encode_header(fin, 0, op, payload.len() as u64, None)
            .as_bytes()
            .to_vec();
        f.extend_from_slice(payload);
        f
    }

    fn feed_by(chunk: usize, bytes: &[u8]) -> Vec<Seen> {
        let mut skim = Skim::default();
        let mut seen = Vec::new();
        for piece in bytes.chunks(chunk) {
            skim.feed(piece, &mut seen).unwrap();
        }
        seen
    }

    #[test]
    fn reads_the_same_frames_whole_and_byte_by_byte() {
        let big = vec![b'x'; 100_000];
        let mut stream = frame(true, OpCode::Text, b"hello");
        stream.extend(frame(false, OpCode::Binary, b"ab"));
        stream.extend(frame(true, OpCode::Ping, b"p"));
        stream.extend(frame(true, OpCode::Continuation, b"cd"));
        stream.extend(frame(true, OpCode::Binary, &big));
        stream.extend(frame(true, OpCode::Pong, b""));
        stream.extend(frame(true, OpCode::Close, &[0x03, 0xf0, b'b', b'y', b'e']));
        let want = vec![
            Seen::Message {
                len: 5,
                bytes: Some(b"hello".to_vec()),
            },
            Seen::Ping(b"p".to_vec()),
            Seen::Message {
                len: 4,
                bytes: Some(b"abcd".to_vec()),
            },
            Seen::Message {
                len: 100_000,
                bytes: None,
            },
            Seen::Pong,
            Seen::Close(1008, "bye".to_owned()),
        ];
        for chunk in [1, 3, 7, 4096, stream.len()] {
            assert_eq!(feed_by(chunk, &stream), want, "in pieces of {chunk}");
        }
    }

    #[test]
    fn an_empty_close_is_1005_and_a_bad_header_is_an_error() {
        assert_eq!(
            feed_by(1, &frame(true, OpCode::Close, b"")),
            vec![Seen::Close(1005, String::new())]
        );
        let mut seen = Vec::new();
        assert!(Skim::default().feed(&[0x83, 0x00], &mut seen).is_err());
        assert!(
            Skim::default()
                .feed(&frame(true, OpCode::Continuation, b"x"), &mut seen)
                .is_err()
        );
    }
}
