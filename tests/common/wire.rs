//! Raw frames for the tests that speak to a server byte by byte (included by `mod.rs` and
//! `procs.rs`): a masked client frame, and reading one server frame.

use std::io::{self, Read};
use std::net::TcpStream;

/// A masked client frame.
pub fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x5a, 0x17, 0xc3, 0x08];
    let h = c10k::proto::frame::encode_header(
        fin,
        0,
        c10k::proto::OpCode::from_u8(opcode).unwrap(),
        payload.len() as u64,
        Some(key),
    );
    let mut out = h.as_bytes().to_vec();
    let start = out.len();
    out.extend_from_slice(payload);
    c10k::proto::mask::apply_mask(&mut out[start..], key, 0);
    out
}

/// Reads one server frame, (fin, opcode, payload), or the error that prevented it (timeout, EOF,
/// reset, or a masked frame, which a server must never send).
pub fn try_read_frame(s: &mut TcpStream) -> io::Result<(bool, u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h)?;
    if h[1] & 0x80 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "server frames are not masked",
        ));
    }
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b)?;
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b)?;
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload)?;
    Ok((h[0] & 0x80 != 0, h[0] & 0x0f, payload))
}
