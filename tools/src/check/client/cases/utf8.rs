//! UTF-8 in text messages (RFC 6455 5.6, 8.1): valid texts are echoed, split anywhere between
//! fragments; invalid ones make the client fail the connection with 1007.

use super::super::super::case::{Group, show_bytes};
use super::super::case::{Registry, Script, Want, sfragments, stext};
use super::{echoes, rejects};

/// Valid texts: the edges of each encoding length.
const VALID: [(&str, &str); 6] = [
    ("Greek", "κόσμε"),
    ("a 4-byte character (U+1D11E)", "𝄞 clef"),
    ("U+0000 and U+007F", "\u{0}\u{7f}"),
    ("U+FFFF and U+E000", "\u{ffff}\u{e000}"),
    ("U+10FFFF", "\u{10ffff}"),
    ("every length mixed", "a¢€𐍈 zß水🍌"),
];

/// Invalid texts (Markus Kuhn's classic sequences among them).
const INVALID: [(&str, &[u8]); 14] = [
    ("an overlong '/' in 2 bytes", b"\xc0\xaf"),
    ("an overlong '/' in 3 bytes", b"\xe0\x80\xaf"),
    ("an overlong '/' in 4 bytes", b"\xf0\x80\x80\xaf"),
    ("the largest overlong 2-byte sequence", b"\xc1\xbf"),
    ("a high surrogate (U+D800)", b"\xed\xa0\x80"),
    ("a low surrogate (U+DFFF)", b"\xed\xbf\xbf"),
    ("a code point past U+10FFFF", b"\xf4\x90\x80\x80"),
    ("the byte F5", b"ok \xf5 no"),
    ("the bytes FE and FF", b"\xfe\xff"),
    ("a lone continuation byte", b"Hello \x80"),
    ("a 2-byte character cut at the end", b"\xce"),
    ("a 4-byte character cut at the end", b"ok \xf0\x9d\x84"),
    ("a bad byte in the middle", b"Hello\xc0World"),
    (
        "a surrogate pair encoded as two characters",
        b"\xed\xa0\xbd\xed\xb2\xa9",
    ),
];

pub(super) fn add(r: &mut Registry) {
    r.group(Group::Utf8);
    r.sub();
    for (what, text) in VALID {
        r.add(
            "8.1",
            format!("a valid text ({what}) is echoed"),
            format!("text {}", show_bytes(text.as_bytes())),
            move || echoes(vec![stext(text.as_bytes())], Want::Text(text.as_bytes().to_vec())),
        );
    }
    r.sub();
    const SPLIT: &str = "κόσμε€𝄞";
    r.add(
        "5.6",
        "a valid text in one fragment per byte (every character split) is echoed",
        format!("text {SPLIT:?}, one byte per fragment"),
        || {
            let p = SPLIT.as_bytes();
            let cuts: Vec<usize> = (1..p.len()).collect();
            echoes(sfragments(0x1, p, &cuts), Want::Text(p.to_vec()))
        },
    );
    r.add(
        "5.6",
        "a valid text cut in two fragments at each byte in turn: every one is echoed",
        format!("text {SPLIT:?} in 2 fragments, once per cut"),
        || {
            let p = SPLIT.as_bytes();
            let mut s = Script::new();
            for cut in 1..p.len() {
                s = s.frames(sfragments(0x1, p, &[cut]));
            }
            s.expect(vec![Want::Text(p.to_vec()); p.len() - 1])
        },
    );
    r.sub();
    for (what, bytes) in INVALID {
        r.add(
            "8.1",
            format!("a text with {what}: fail with 1007"),
            format!("text {}", show_bytes(bytes)),
            move || rejects(stext(bytes), &[1007]),
        );
    }
    r.sub();
    r.add(
        "5.6",
        "invalid UTF-8 in the middle fragment of a text: fail with 1007",
        "text \"κόσμε\" / [ed a0 80] / \"ok\" in 3 fragments",
        || {
            let mut p = "κόσμε".as_bytes().to_vec();
            let a = p.len();
            p.extend_from_slice(b"\xed\xa0\x80");
            let b = p.len();
            p.extend_from_slice(b"ok");
            rejects(sfragments(0x1, &p, &[a, b]).concat(), &[1007])
        },
    );
    r.add(
        "5.6",
        "a code point past U+10FFFF split between two fragments: fail with 1007",
        "text [f4] / [90 80 80] in 2 fragments",
        || rejects(sfragments(0x1, b"\xf4\x90\x80\x80", &[1]).concat(), &[1007]),
    );
}
