//! UTF-8 in text messages (RFC 6455 5.6, 8.1; RFC 3629): valid text is echoed byte for byte,
//! invalid text fails the connection with 1007, however the message is cut into frames and
//! writes; and a server that can see the text is invalid early fails it before the message ends.

use crate::check::case::{Registry, Script, Want, show_bytes, wire};

/// Valid text samples: (name, bytes).
const VALID: &[(&str, &[u8])] = &[
    ("empty", b""),
    ("ASCII", b"Hello, world"),
    ("Greek \"kosme\"", "κόσμε".as_bytes()),
    ("U+0000", &[0x00]),
    ("U+007F", &[0x7f]),
    ("U+0080, the first 2-byte sequence", &[0xc2, 0x80]),
    ("U+07FF, the last 2-byte sequence", &[0xdf, 0xbf]),
    ("U+0800, the first 3-byte sequence", &[0xe0, 0xa0, 0x80]),
    ("U+D7FF, just below the surrogates", &[0xed, 0x9f, 0xbf]),
    ("U+E000, just above the surrogates", &[0xee, 0x80, 0x80]),
    ("U+FEFF, a byte order mark", &[0xef, 0xbb, 0xbf]),
    ("U+FFFD, the replacement character", &[0xef, 0xbf, 0xbd]),
    ("U+FFFF, a noncharacter (valid UTF-8)", &[0xef, 0xbf, 0xbf]),
    ("U+10000, the first 4-byte sequence", &[0xf0, 0x90, 0x80, 0x80]),
    ("U+10FFFF, the last code point", &[0xf4, 0x8f, 0xbf, 0xbf]),
    ("mixed scripts and sizes", "Ħello κόσμε 𝄞 日本語 €!".as_bytes()),
];

/// Invalid text samples: (name, bytes).
const INVALID: &[(&str, &[u8])] = &[
    ("overlong U+0000 in 2 bytes", &[0xc0, 0x80]),
    ("overlong '/' in 2 bytes", &[0xc0, 0xaf]),
    ("overlong U+007F in 2 bytes", &[0xc1, 0xbf]),
    ("overlong U+0000 in 3 bytes", &[0xe0, 0x80, 0x80]),
    ("overlong '/' in 3 bytes", &[0xe0, 0x80, 0xaf]),
    ("overlong U+07FF in 3 bytes", &[0xe0, 0x9f, 0xbf]),
    ("overlong U+0000 in 4 bytes", &[0xf0, 0x80, 0x80, 0x80]),
    ("overlong '/' in 4 bytes", &[0xf0, 0x80, 0x80, 0xaf]),
    ("overlong U+FFFF in 4 bytes", &[0xf0, 0x8f, 0xbf, 0xbf]),
    ("a 5-byte sequence", &[0xf8, 0x88, 0x80, 0x80, 0x80]),
    ("a 6-byte sequence", &[0xfc, 0x84, 0x80, 0x80, 0x80, 0x80]),
    ("surrogate U+D800", &[0xed, 0xa0, 0x80]),
    ("surrogate U+DB7F", &[0xed, 0xad, 0xbf]),
    ("surrogate U+DB80", &[0xed, 0xae, 0x80]),
    ("surrogate U+DBFF", &[0xed, 0xaf, 0xbf]),
    ("surrogate U+DC00", &[0xed, 0xb0, 0x80]),
    ("surrogate U+DF80", &[0xed, 0xbe, 0x80]),
    ("surrogate U+DFFF", &[0xed, 0xbf, 0xbf]),
    (
        "surrogate pair U+D800 U+DC00",
        &[0xed, 0xa0, 0x80, 0xed, 0xb0, 0x80],
    ),
    (
        "surrogate pair U+DBFF U+DFFF",
        &[0xed, 0xaf, 0xbf, 0xed, 0xbf, 0xbf],
    ),
    ("U+110000, above the last code point", &[0xf4, 0x90, 0x80, 0x80]),
    ("lead byte F5", &[0xf5, 0x80, 0x80, 0x80]),
    ("lead byte F7, U+1FFFFF", &[0xf7, 0xbf, 0xbf, 0xbf]),
    ("a truncated 2-byte sequence", &[0xc2]),
    ("a truncated 3-byte sequence", &[0xe2, 0x82]),
    ("a truncated 4-byte sequence", &[0xf0, 0x9f, 0x98]),
    ("a 2-byte lead byte before ASCII", &[0xc2, 0x41]),
    ("a 3-byte sequence cut by ASCII", &[0xe2, 0x82, 0x41]),
    (
        "text ending in a truncated sequence",
        &[
            0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xe2, 0x82,
        ],
    ),
    ("a lone continuation byte 80", &[0x80]),
    ("a lone continuation byte BF", &[0xbf]),
    ("3 continuation bytes", &[0x80, 0xbf, 0x80]),
    ("a continuation byte between ASCII", b"a\x80b"),
    ("byte FE", &[0xfe]),
    ("byte FF", &[0xff]),
    ("bytes FE FE FF FF", &[0xfe, 0xfe, 0xff, 0xff]),
    (
        "a surrogate inside valid text",
        &[
            0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80, 0x65, 0x64,
            0x69, 0x74, 0x65, 0x64,
        ],
    ),
];

/// Samples up to this long are also sent split in two at every byte boundary.
const SPLIT_MAX: usize = 8;

fn script(frames: Vec<Vec<u8>>, chunk: Option<usize>, sample: &[u8], valid: bool) -> Script {
    let s = match chunk {
        Some(n) => Script::new().chunked(wire::concat(&frames), n),
        None => Script::new().frames(frames),
    };
    if valid {
        s.expect(vec![Want::Text(sample.to_vec())]).close()
    } else {
        s.fail(1007)
    }
}

fn add_sample(reg: &mut Registry, name: &'static str, sample: &'static [u8], valid: bool) {
    let section = if valid { "5.6" } else { "8.1" };
    let outcome = if valid {
        "is echoed exactly"
    } else {
        "fails with 1007"
    };
    let shown = show_bytes(sample);
    reg.one(
        section,
        format!("{name}, in one frame, {outcome}"),
        format!("text frame {shown}"),
        move || script(vec![wire::text(sample)], None, sample, valid),
    );
    if sample.len() >= 2 {
        reg.one(
            section,
            format!("{name}, one frame written 1 byte at a time, {outcome}"),
            format!("text frame {shown}, 1 byte per write"),
            move || script(vec![wire::text(sample)], Some(1), sample, valid),
        );
        reg.one(
            section,
            format!("{name}, one byte per frame, {outcome}"),
            format!("{shown} in {} frames of 1 byte", sample.len()),
            move || script(wire::byte_frames(wire::TEXT, sample), None, sample, valid),
        );
    }
    if (2..=SPLIT_MAX).contains(&sample.len()) {
        for cut in 1..sample.len() {
            reg.one(
                section,
                format!("{name}, in 2 frames split after byte {cut}, {outcome}"),
                format!("{} + {}", show_bytes(&sample[..cut]), show_bytes(&sample[cut..])),
                move || script(wire::fragments(wire::TEXT, sample, &[cut]), None, sample, valid),
            );
        }
    }
}

/// ASCII text, so that the invalid bytes put into it are the only invalid ones.
fn ascii(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

pub(super) fn add(reg: &mut Registry) {
    reg.sub();
    for &(name, sample) in VALID {
        add_sample(reg, name, sample, true);
    }
    reg.sub();
    for &(name, sample) in INVALID {
        add_sample(reg, name, sample, false);
    }

    // Fail fast: the invalid bytes come early; the server must not wait for the message's end.
    reg.sub();
    const EARLY: &[(&str, &[u8])] = &[
        ("byte FF", &[0xff]),
        ("a lone continuation byte", &[0x80]),
        ("an overlong '/'", &[0xc0, 0xaf]),
        ("surrogate U+D800", &[0xed, 0xa0, 0x80]),
        ("U+110000", &[0xf4, 0x90, 0x80, 0x80]),
        ("a 5-byte sequence", &[0xf8, 0x88, 0x80, 0x80, 0x80]),
    ];
    const FRAME: usize = 16 << 10;
    for &(name, bad) in EARLY {
        reg.one(
            "8.1",
            format!("{name} at byte 10 of the first of 4 frames of 16 KiB: 1007 before the final frame"),
            "the first frame of a 64 KiB text message in 4 frames".to_owned(),
            move || {
                let mut p = ascii(4 * FRAME);
                p[10..10 + bad.len()].copy_from_slice(bad);
                let frames = wire::fragments(wire::TEXT, &p, &[FRAME, 2 * FRAME, 3 * FRAME]);
                Script::new()
                    .write(frames[0].clone())
                    .fail_fast(1007, wire::concat(&frames[1..]))
            },
        );
    }
    for &(name, bad) in EARLY {
        reg.one(
            "8.1",
            format!("{name} at byte 10 of a 64 KiB text frame: 1007 before the rest of the frame"),
            "the header and first 1 KiB of a 64 KiB text frame".to_owned(),
            move || {
                let mut p = ascii(4 * FRAME);
                p[10..10 + bad.len()].copy_from_slice(bad);
                let f = wire::text(&p);
                let head_len = f.len() - p.len();
                let (first, rest) = f.split_at(head_len + 1024);
                Script::new().write(first.to_vec()).fail_fast(1007, rest.to_vec())
            },
        );
    }
    reg.one(
        "8.1",
        "invalid byte FF in the second of 4 frames: 1007 before the final frame",
        "the first two frames of a 64 KiB text message in 4 frames".to_owned(),
        || {
            let mut p = ascii(4 * FRAME);
            p[FRAME + 5] = 0xff;
            let frames = wire::fragments(wire::TEXT, &p, &[FRAME, 2 * FRAME, 3 * FRAME]);
            Script::new()
                .write(wire::concat(&frames[..2]))
                .fail_fast(1007, wire::concat(&frames[2..]))
        },
    );
    reg.one(
        "8.1",
        "U+110000 split across the first two frames: 1007 before the final frame",
        "frame 1 ends in F4, frame 2 starts with 90 80 80, of 4 frames".to_owned(),
        || {
            let mut p = ascii(4 * FRAME);
            p[FRAME - 1..FRAME + 3].copy_from_slice(&[0xf4, 0x90, 0x80, 0x80]);
            let frames = wire::fragments(wire::TEXT, &p, &[FRAME, 2 * FRAME, 3 * FRAME]);
            Script::new()
                .write(wire::concat(&frames[..2]))
                .fail_fast(1007, wire::concat(&frames[2..]))
        },
    );
}
