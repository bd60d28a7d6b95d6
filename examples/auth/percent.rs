//! Percent-encoding (RFC 3986, section 2.1) of a token carried in a query parameter, both ways.
//!
//! A token is opaque bytes: whatever it holds (`&`, `=`, spaces, CR/LF, `%`, bytes past ASCII)
//! travels as `%XX` and so cannot end the parameter, add another, or split the request line.

/// `bytes` with every byte but the unreserved ones (`A-Z a-z 0-9 - . _ ~`) written `%XX`.
pub fn encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

/// The bytes `text` encodes: each `%XX` becomes its byte; anything else, a `%` not followed by
/// two hexadecimal digits included, stands for itself (`+` too: this is not form encoding).
pub fn decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex(*hi).zip(hex(*lo)).map(|(hi, lo)| hi << 4 | lo),
            _ => None,
        };
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// The value of parameter `name` in a query string (`a=1&b=2`), decoded; the first if several.
pub fn query_param(query: &str, name: &str) -> Option<Vec<u8>> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| decode(v))
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).and_then(|d| u8::try_from(d).ok())
}
