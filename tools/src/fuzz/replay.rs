//! The replay file: one sequence as a few lines of text, small enough to read and to commit as
//! a regression case.
//!
//! ```text
//! # c10k fuzz replay 1
//! # FAIL accepted-invalid: sent a text message of 2 bytes although ... (fail 1007 (invalid UTF-8))
//! max-message 1048576
//! opening deflate=0 pipelined=1 mutation=none
//! frame fin=1 rsv=0 op=1 mask=0a0b0c0d len=minimal payload=48ff
//! frame fin=1 rsv=0 op=2 mask=none len=declared:4294967301 payload=61*300,0a0b
//! cuts 3/0 17/1500
//! ```
//!
//! Lines starting with `#` are comments. `max-message` is the limit the oracle assumed
//! (`unknown` when none was given). A frame's `op` is the 4-bit opcode in hex, `mask` the key
//! in hex or `none`, `len` one of `minimal`, `ext16`, `ext64`, `declared:N`, and `payload`
//! comma-separated pieces: hex bytes, or `XX*N` for the byte XX repeated N times (`-` when
//! empty). `cuts` lists `offset/pause_us` pairs: the writes end at these byte offsets of the
//! stream (request and frames), each followed by a pause in microseconds.

use std::fmt::Write as _;

use super::sequence::{Cut, Frame, Len, Mutation, Opening, Sequence};

/// The first line of every replay file.
pub const MAGIC: &str = "# c10k fuzz replay 1";

/// A replay file's content: a sequence and the limit the oracle assumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// The server's message limit the oracle assumed.
    pub max_message: Option<usize>,
    /// The sequence.
    pub sequence: Sequence,
}

impl Replay {
    /// The file's text, with `comments` (one per line) after the first line.
    pub fn to_text(&self, comments: &[String]) -> String {
        let mut s = String::new();
        s.push_str(MAGIC);
        s.push('\n');
        for c in comments {
            for line in c.lines() {
                let _ = writeln!(s, "# {line}");
            }
        }
        match self.max_message {
            Some(m) => {
                let _ = writeln!(s, "max-message {m}");
            }
            None => s.push_str("max-message unknown\n"),
        }
        let o = &self.sequence.opening;
        let _ = writeln!(
            s,
            "opening deflate={} pipelined={} mutation={}",
            u8::from(o.deflate),
            u8::from(o.pipelined),
            o.mutation.name()
        );
        for f in &self.sequence.frames {
            let mask = f.mask.map_or("none".to_owned(), |k| hex(&k));
            let len = match f.len {
                Len::Minimal => "minimal".to_owned(),
                Len::Ext16 => "ext16".to_owned(),
                Len::Ext64 => "ext64".to_owned(),
                Len::Declared(n) => format!("declared:{n}"),
            };
            let _ = writeln!(
                s,
                "frame fin={} rsv={} op={:x} mask={mask} len={len} payload={}",
                u8::from(f.fin),
                f.rsv,
                f.opcode,
                payload_text(&f.payload)
            );
        }
        if !self.sequence.cuts.is_empty() {
            s.push_str("cuts");
            for c in &self.sequence.cuts {
                let _ = write!(s, " {}/{}", c.at, c.pause_us);
            }
            s.push('\n');
        }
        s
    }

    /// Parses a replay file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut max_message = None;
        let mut opening = None;
        let mut frames = Vec::new();
        let mut cuts = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |what: &str| format!("line {}: {what}: {line}", n + 1);
            let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
            match word {
                "max-message" => {
                    max_message = match rest.trim() {
                        "unknown" => None,
                        v => Some(v.parse().map_err(|_| err("a byte count or `unknown`"))?),
                    }
                }
                "opening" => {
                    let f = fields(rest);
                    opening = Some(Opening {
                        deflate: flag(&f, "deflate").ok_or_else(|| err("deflate=0|1"))?,
                        pipelined: flag(&f, "pipelined").ok_or_else(|| err("pipelined=0|1"))?,
                        mutation: get(&f, "mutation")
                            .and_then(Mutation::from_name)
                            .ok_or_else(|| err("an unknown mutation"))?,
                    });
                }
                "frame" => {
                    let f = fields(rest);
                    let mask = match get(&f, "mask") {
                        Some("none") => None,
                        Some(h) => Some(
                            unhex(h)
                                .and_then(|k| <[u8; 4]>::try_from(k).ok())
                                .ok_or_else(|| err("a 4-byte mask"))?,
                        ),
                        None => return Err(err("no mask")),
                    };
                    let len = match get(&f, "len") {
                        Some("minimal") => Len::Minimal,
                        Some("ext16") => Len::Ext16,
                        Some("ext64") => Len::Ext64,
                        Some(d) => Len::Declared(
                            d.strip_prefix("declared:")
                                .and_then(|n| n.parse().ok())
                                .ok_or_else(|| err("a length form"))?,
                        ),
                        None => return Err(err("no len")),
                    };
                    frames.push(Frame {
                        fin: flag(&f, "fin").ok_or_else(|| err("fin=0|1"))?,
                        rsv: get(&f, "rsv")
                            .and_then(|r| r.parse().ok())
                            .filter(|&r: &u8| r < 8)
                            .ok_or_else(|| err("rsv=0..7"))?,
                        opcode: get(&f, "op")
                            .and_then(|o| u8::from_str_radix(o, 16).ok())
                            .filter(|&o| o < 16)
                            .ok_or_else(|| err("op=0..f"))?,
                        mask,
                        len,
                        payload: get(&f, "payload")
                            .and_then(parse_payload)
                            .ok_or_else(|| err("a payload"))?,
                    });
                }
                "cuts" => {
                    for pair in rest.split_whitespace() {
                        let (at, pause) = pair.split_once('/').ok_or_else(|| err("offset/pause pairs"))?;
                        cuts.push(Cut {
                            at: at.parse().map_err(|_| err("an offset"))?,
                            pause_us: pause.parse().map_err(|_| err("a pause"))?,
                        });
                    }
                }
                _ => return Err(err("unknown line")),
            }
        }
        cuts.sort_unstable();
        Ok(Self {
            max_message,
            sequence: Sequence {
                opening: opening.ok_or("no `opening` line")?,
                frames,
                cuts,
            },
        })
    }
}

fn fields(rest: &str) -> Vec<(&str, &str)> {
    rest.split_whitespace()
        .filter_map(|f| f.split_once('='))
        .collect()
}

fn get<'a>(fields: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
}

fn flag(fields: &[(&str, &str)], name: &str) -> Option<bool> {
    match get(fields, name)? {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Runs of 8 or more equal bytes are written `XX*N`.
fn payload_text(p: &[u8]) -> String {
    if p.is_empty() {
        return "-".to_owned();
    }
    let mut pieces: Vec<String> = Vec::new();
    let mut literal = Vec::new();
    let mut i = 0;
    while i < p.len() {
        let run = p[i..].iter().take_while(|&&b| b == p[i]).count();
        if run >= 8 {
            if !literal.is_empty() {
                pieces.push(hex(&literal));
                literal.clear();
            }
            pieces.push(format!("{:02x}*{run}", p[i]));
            i += run;
        } else {
            literal.extend_from_slice(&p[i..i + run]);
            i += run;
        }
    }
    if !literal.is_empty() {
        pieces.push(hex(&literal));
    }
    pieces.join(",")
}

fn parse_payload(s: &str) -> Option<Vec<u8>> {
    if s == "-" {
        return Some(Vec::new());
    }
    let mut out = Vec::new();
    for piece in s.split(',') {
        match piece.split_once('*') {
            Some((b, n)) => {
                let b = u8::from_str_radix(b, 16).ok()?;
                let n: usize = n.parse().ok()?;
                // A replay file describes frames a fuzzer sends: 64 MiB is past any of them.
                if n > 64 << 20 {
                    return None;
                }
                out.resize(out.len() + n, b);
            }
            None => out.extend(unhex(piece)?),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::grammar::Grammar;
    use crate::fuzz::rng::Rng;

    #[test]
    fn drawn_sequences_survive_the_round_trip() {
        let g = Grammar {
            max_message: Some(1 << 20),
        };
        for i in 0..300 {
            let r = Replay {
                max_message: if i % 2 == 0 { Some(1 << 20) } else { None },
                sequence: g.sequence(&mut Rng::for_sequence(11, i)),
            };
            let text = r.to_text(&["a comment".to_owned()]);
            assert_eq!(Replay::parse(&text).unwrap(), r, "{text}");
        }
    }

    #[test]
    fn long_runs_are_short_in_the_file() {
        let mut p = vec![0x61; 65536];
        p.extend_from_slice(&[1, 2, 3]);
        assert_eq!(payload_text(&p), "61*65536,010203");
        assert_eq!(parse_payload("61*65536,010203").unwrap(), p);
        assert_eq!(payload_text(&[]), "-");
    }

    #[test]
    fn broken_files_are_refused_with_the_line() {
        assert!(Replay::parse("frame fin=1").unwrap_err().contains("line 1"));
        assert!(Replay::parse("max-message 1\n").unwrap_err().contains("opening"));
        assert!(parse_payload("zz").is_none());
    }
}
