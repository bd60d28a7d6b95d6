//! Close frame payloads (RFC 6455 sections 5.5.1, 7.1.5): parsing what the peer sent.
//!
//! [`CloseCode`] lives in its own leaf module ([`super::close_code`]) and is re-exported here.

pub use super::close_code::CloseCode;
use super::error::Error;

/// The content of a received Close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// The status code; [`CloseCode::NoStatus`] when the frame had an empty payload.
    pub code: CloseCode,
    /// The reason, validated UTF-8; empty when absent.
    pub reason: &'a str,
}

/// The longest reason that fits a Close frame: 125 bytes of payload less the 2-byte code.
pub const MAX_CLOSE_REASON: usize = 123;

/// Parses the payload of a received Close frame (RFC 6455 section 5.5.1).
///
/// An empty payload is a close without status ([`CloseCode::NoStatus`]). A 1-byte payload or a
/// code that may not be sent is a protocol error (1002); a reason that is not UTF-8 is 1007.
pub fn parse_close_payload(payload: &[u8]) -> Result<CloseFrame<'_>, Error> {
    match payload {
        [] => Ok(CloseFrame {
            code: CloseCode::NoStatus,
            reason: "",
        }),
        [_] => Err(Error::CloseOneByte),
        [hi, lo, reason @ ..] => {
            let code = CloseCode::from(u16::from_be_bytes([*hi, *lo]));
            if !code.is_sendable() {
                return Err(Error::InvalidCloseCode(code.as_u16()));
            }
            let reason = std::str::from_utf8(reason).map_err(|e| Error::InvalidUtf8 {
                offset: e.valid_up_to() as u64,
            })?;
            Ok(CloseFrame { code, reason })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_close_payload_is_no_status() {
        let f = parse_close_payload(&[]).unwrap();
        assert_eq!(f.code, CloseCode::NoStatus);
        assert_eq!(f.reason, "");
    }

    #[test]
    fn one_byte_close_payload_is_1002() {
        let e = parse_close_payload(&[0x03]).unwrap_err();
        assert_eq!(e, Error::CloseOneByte);
        assert_eq!(e.close_code(), CloseCode::ProtocolError);
    }

    #[test]
    fn unsendable_codes_are_1002() {
        for n in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, u16::MAX] {
            let e = parse_close_payload(&n.to_be_bytes()).unwrap_err();
            assert_eq!(e.close_code(), CloseCode::ProtocolError, "code {n}");
        }
    }

    #[test]
    fn invalid_utf8_reason_is_1007() {
        let e = parse_close_payload(&[0x03, 0xe8, b'o', 0xff]).unwrap_err();
        assert_eq!(e.close_code(), CloseCode::InvalidPayload);
    }

    #[test]
    fn code_and_reason_are_parsed() {
        let f = parse_close_payload(&[0x0f, 0xa0, b'b', b'y', b'e']).unwrap();
        assert_eq!(f.code, CloseCode::Application(4000));
        assert_eq!(f.reason, "bye");
    }
}
