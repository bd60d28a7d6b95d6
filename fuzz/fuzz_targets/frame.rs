//! `decode_header` on arbitrary bytes: an accepted header re-encodes to exactly its bytes (every
//! length is minimal), every prefix of it is "need more", and a rejected one is a 1002 error that
//! no prefix reports differently.
#![no_main]

use c10k::proto::CloseCode;
use c10k::proto::frame::{MAX_HEADER_LEN, decode_header, encode_header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match decode_header(data) {
        Ok(Some((h, n))) => {
            assert!(n <= data.len().min(MAX_HEADER_LEN));
            let encoded = encode_header(h.fin, h.rsv, h.opcode, h.len, h.mask);
            assert_eq!(encoded.as_bytes(), &data[..n]);
            for cut in 0..n {
                assert_eq!(decode_header(&data[..cut]), Ok(None), "prefix of {cut} bytes");
            }
        }
        Ok(None) => assert!(data.len() < MAX_HEADER_LEN),
        Err(e) => {
            assert_eq!(e.close_code(), CloseCode::ProtocolError);
            for cut in 0..data.len().min(MAX_HEADER_LEN) {
                let early = decode_header(&data[..cut]);
                assert!(
                    early == Ok(None) || early == Err(e.clone()),
                    "prefix of {cut}: {early:?} vs {e:?}"
                );
            }
        }
    }
});
