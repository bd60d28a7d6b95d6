//! RESP2, the Redis protocol, sans-I/O: commands encoded into a caller's buffer, and a parser
//! that is fed bytes as they arrive and yields replies.
//!
//! Only what the bridge meets is parsed: simple strings, errors, integers, bulk strings and
//! arrays (the bridge never sends `HELLO 3`, so Redis answers in RESP2). Incomplete input is not
//! an error: [`Parser::next`] returns `Ok(None)` and keeps what it has until more bytes come.
//!
//! What the parser holds is bounded before it is allocated:
//! - a bulk string longer than the parser's `max_bulk` is skipped as its bytes arrive, never
//!   buffered, and yields [`Value::TooLarge`] with its length (the stream stays in step);
//! - a line (a reply's header, a simple string, an error) is at most [`MAX_LINE`] bytes;
//! - an array has at most [`MAX_ARRAY`] elements and nests at most [`MAX_DEPTH`] deep.
//!
//! Anything else is a [`RespError`], after which the connection is useless.
//!
//! Feed it a chunk, then call [`Parser::next`] until it returns `Ok(None)`: the parser then holds
//! at most one unfinished reply's bulk string (`max_bulk` + 2 bytes) or line, plus the chunk.

use std::io::Write as _;

/// The longest line (header, simple string or error), CRLF excluded.
pub(crate) const MAX_LINE: usize = 4 << 10;
/// The most elements of one array (pub/sub messages have 3 or 4).
pub(crate) const MAX_ARRAY: usize = 64;
/// How deep arrays may nest.
pub(crate) const MAX_DEPTH: usize = 4;

/// A reply, or a pub/sub message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// `+OK`
    Simple(Vec<u8>),
    /// `-ERR ...`
    Error(Vec<u8>),
    /// `:42`
    Int(i64),
    /// `$3\r\nabc`
    Bulk(Vec<u8>),
    /// A bulk string longer than the parser's limit, skipped: its length.
    TooLarge(usize),
    /// `$-1` or `*-1`
    Nil,
    /// `*2\r\n...`
    Array(Vec<Value>),
}

impl Value {
    /// The bytes the value holds (its strings, its elements').
    pub(crate) fn size(&self) -> usize {
        match self {
            Self::Simple(b) | Self::Error(b) | Self::Bulk(b) => b.len(),
            Self::Array(items) => items.iter().map(Self::size).sum(),
            Self::Int(_) | Self::TooLarge(_) | Self::Nil => 0,
        }
    }

    /// The bytes of a bulk or simple string.
    pub(crate) fn bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Bulk(b) | Self::Simple(b) => Some(b),
            _ => None,
        }
    }
}

/// The input is not RESP2 as the bridge expects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RespError {
    /// A byte where the grammar allows none, or a number that does not parse.
    Malformed(&'static str),
    /// A line longer than [`MAX_LINE`].
    LineTooLong,
    /// An array longer than [`MAX_ARRAY`] or nested deeper than [`MAX_DEPTH`].
    ArrayTooLarge,
    /// A reply whose bulk strings hold more than the parser's `max_reply` bytes.
    ReplyTooLarge,
}

impl std::fmt::Display for RespError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed(what) => write!(f, "malformed reply: {what}"),
            Self::LineTooLong => write!(f, "a reply line longer than {MAX_LINE} bytes"),
            Self::ArrayTooLarge => write!(f, "an array too long or deeper than {MAX_DEPTH}"),
            Self::ReplyTooLarge => write!(f, "a reply larger than the bridge reads"),
        }
    }
}

impl std::error::Error for RespError {}

/// What the parser expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A type byte and its line.
    Header,
    /// The bytes of a bulk string of this length, then CRLF.
    Bulk(usize),
    /// Bytes still to skip (an oversized bulk string and its CRLF), and the string's length.
    Skip { left: usize, len: usize },
}

/// What one line of input gave.
enum Step {
    Value(Value),
    /// The line began a bulk string or an array: go on.
    Continue,
    NeedMore,
}

/// An incremental RESP2 parser (see the module docs for its bounds).
#[derive(Debug)]
pub(crate) struct Parser {
    buf: Vec<u8>,
    /// Where the unparsed bytes of `buf` start.
    pos: usize,
    max_bulk: usize,
    max_array: usize,
    max_reply: usize,
    /// Bytes of bulk strings in the reply being parsed.
    held: usize,
    state: State,
    /// Arrays being filled: elements still expected, elements so far.
    stack: Vec<(usize, Vec<Value>)>,
}

impl Parser {
    /// A parser that skips bulk strings longer than `max_bulk`.
    pub(crate) fn new(max_bulk: usize) -> Self {
        Self::with_bounds(max_bulk, MAX_ARRAY, usize::MAX)
    }

    /// A parser that skips bulk strings longer than `max_bulk`, and refuses arrays of more than
    /// `max_array` elements and replies whose bulk strings hold more than `max_reply` bytes.
    pub(crate) fn with_bounds(max_bulk: usize, max_array: usize, max_reply: usize) -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            max_bulk,
            max_array,
            max_reply,
            held: 0,
            state: State::Header,
            stack: Vec::new(),
        }
    }

    /// Bytes held: received and not yet parsed into a value.
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Hands the parser bytes read from the connection. Bytes of an oversized bulk string are
    /// skipped here when nothing is buffered before them.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        if let State::Skip { left, len } = self.state
            && self.buffered() == 0
        {
            let n = left.min(bytes.len());
            bytes = &bytes[n..];
            self.state = State::Skip { left: left - n, len };
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete value; `Ok(None)` when more bytes are needed.
    pub(crate) fn next(&mut self) -> Result<Option<Value>, RespError> {
        loop {
            let value = match self.state {
                State::Skip { left, len } => {
                    let n = left.min(self.buffered());
                    self.pos += n;
                    if n < left {
                        self.state = State::Skip { left: left - n, len };
                        return Ok(self.need_more());
                    }
                    self.state = State::Header;
                    Value::TooLarge(len)
                }
                State::Bulk(len) => {
                    if self.buffered() < len + 2 {
                        return Ok(self.need_more());
                    }
                    let start = self.pos;
                    if &self.buf[start + len..start + len + 2] != b"\r\n" {
                        return Err(RespError::Malformed("a bulk string not followed by CRLF"));
                    }
                    self.pos += len + 2;
                    self.state = State::Header;
                    Value::Bulk(self.buf[start..start + len].to_vec())
                }
                State::Header => match self.header()? {
                    Step::Value(v) => v,
                    Step::Continue => continue,
                    Step::NeedMore => return Ok(self.need_more()),
                },
            };
            if let Some(done) = self.complete(value) {
                return Ok(Some(done));
            }
        }
    }

    /// Parses one line: a value when the line is all of it, `Continue` when it begins a bulk
    /// string or an array.
    fn header(&mut self) -> Result<Step, RespError> {
        let rest = &self.buf[self.pos..];
        // The type byte, at most MAX_LINE bytes, CRLF.
        let window = &rest[..rest.len().min(MAX_LINE + 3)];
        let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
            return if rest.len() >= MAX_LINE + 3 {
                Err(RespError::LineTooLong)
            } else {
                Ok(Step::NeedMore)
            };
        };
        let (&kind, line) = rest[..end]
            .split_first()
            .ok_or(RespError::Malformed("an empty line"))?;
        let line = line.to_vec();
        self.pos += end + 2;
        let value = match kind {
            b'+' => Value::Simple(line),
            b'-' => Value::Error(line),
            b':' => Value::Int(number(&line)?),
            b'$' => match number(&line)? {
                -1 => Value::Nil,
                n => {
                    let len =
                        usize::try_from(n).map_err(|_| RespError::Malformed("a negative bulk length"))?;
                    if len <= self.max_bulk {
                        self.held = self.held.saturating_add(len);
                        if self.held > self.max_reply {
                            return Err(RespError::ReplyTooLarge);
                        }
                    }
                    self.state = if len > self.max_bulk {
                        State::Skip {
                            left: len.saturating_add(2),
                            len,
                        }
                    } else {
                        State::Bulk(len)
                    };
                    return Ok(Step::Continue);
                }
            },
            b'*' => match number(&line)? {
                -1 => Value::Nil,
                0 => Value::Array(Vec::new()),
                n => {
                    let len =
                        usize::try_from(n).map_err(|_| RespError::Malformed("a negative array length"))?;
                    if len > self.max_array || self.stack.len() >= MAX_DEPTH {
                        return Err(RespError::ArrayTooLarge);
                    }
                    self.stack.push((len, Vec::with_capacity(len)));
                    return Ok(Step::Continue);
                }
            },
            _ => return Err(RespError::Malformed("an unknown reply type")),
        };
        Ok(Step::Value(value))
    }

    /// Puts a finished value into the array being filled; the outermost value once complete.
    fn complete(&mut self, mut value: Value) -> Option<Value> {
        loop {
            let Some((left, items)) = self.stack.last_mut() else {
                self.held = 0;
                return Some(value);
            };
            items.push(value);
            *left -= 1;
            if *left > 0 {
                return None;
            }
            let (_, items) = self.stack.pop()?;
            value = Value::Array(items);
        }
    }

    /// Drops the parsed bytes from the buffer; `None`, for `next` to return.
    fn need_more(&mut self) -> Option<Value> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        None
    }
}

/// A decimal number of a reply line.
fn number(line: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(RespError::Malformed("a number"))
}

/// Appends a command (an array of bulk strings) to `out`.
pub(crate) fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    let _ = write!(out, "*{}\r\n", args.len());
    for a in args {
        let _ = write!(out, "${}\r\n", a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// The length of a bulk string's header and trailer around `len` bytes (`$len\r\n`, `\r\n`).
pub(crate) fn bulk_overhead(len: usize) -> usize {
    1 + decimal_len(len) + 2 + 2
}

/// The digits of `n` in decimal.
pub(crate) fn decimal_len(mut n: usize) -> usize {
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value of `input`, fed whole and fed byte by byte (both must agree).
    fn parse_all(input: &[u8], max_bulk: usize) -> Result<Vec<Value>, RespError> {
        let mut whole = Parser::new(max_bulk);
        whole.feed(input);
        let mut a = Vec::new();
        while let Some(v) = whole.next()? {
            a.push(v);
        }
        let mut bytewise = Parser::new(max_bulk);
        let mut b = Vec::new();
        for byte in input {
            bytewise.feed(std::slice::from_ref(byte));
            while let Some(v) = bytewise.next()? {
                b.push(v);
            }
        }
        assert_eq!(a, b, "fed whole and byte by byte");
        assert_eq!(whole.buffered(), bytewise.buffered());
        Ok(a)
    }

    #[test]
    fn parser_reads_every_reply_type_whole_and_byte_by_byte() {
        let input = b"+OK\r\n-ERR no\r\n:42\r\n$3\r\nabc\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n\
                      *3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$4\r\na\r\nb\r\n*2\r\n*1\r\n:1\r\n:2\r\n";
        let values = parse_all(input, 1024).unwrap();
        assert_eq!(
            values,
            vec![
                Value::Simple(b"OK".to_vec()),
                Value::Error(b"ERR no".to_vec()),
                Value::Int(42),
                Value::Bulk(b"abc".to_vec()),
                Value::Bulk(Vec::new()),
                Value::Nil,
                Value::Nil,
                Value::Array(vec![]),
                Value::Array(vec![
                    Value::Bulk(b"message".to_vec()),
                    Value::Bulk(b"ch".to_vec()),
                    Value::Bulk(b"a\r\nb".to_vec()),
                ]),
                Value::Array(vec![Value::Array(vec![Value::Int(1)]), Value::Int(2)]),
            ]
        );
    }

    #[test]
    fn parser_waits_for_more_on_a_prefix() {
        let mut p = Parser::new(16);
        p.feed(b"*3\r\n$7\r\nmess");
        assert_eq!(p.next(), Ok(None));
        p.feed(b"age\r\n$1\r\nc\r\n$2\r\nhi\r");
        assert_eq!(p.next(), Ok(None));
        p.feed(b"\n:5");
        assert!(matches!(p.next(), Ok(Some(Value::Array(v))) if v.len() == 3));
        assert_eq!(p.next(), Ok(None));
        p.feed(b"\r\n");
        assert_eq!(p.next(), Ok(Some(Value::Int(5))));
        assert_eq!(p.buffered(), 0);
    }

    #[test]
    fn parser_skips_a_bulk_string_past_its_limit_and_stays_in_step() {
        let mut input = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$100\r\n".to_vec();
        input.extend_from_slice(&[b'x'; 100]);
        input.extend_from_slice(b"\r\n:7\r\n");
        let values = parse_all(&input, 99).unwrap();
        assert_eq!(
            values,
            vec![
                Value::Array(vec![
                    Value::Bulk(b"message".to_vec()),
                    Value::Bulk(b"ch".to_vec()),
                    Value::TooLarge(100),
                ]),
                Value::Int(7),
            ]
        );
    }

    #[test]
    fn parser_never_buffers_an_oversized_bulk_string() {
        let mut p = Parser::new(1000);
        p.feed(b"$1000000\r\n");
        assert_eq!(p.next(), Ok(None));
        let chunk = [b'y'; 4096];
        let mut sent = 0;
        while sent < 1_000_000 {
            let n = chunk.len().min(1_000_000 - sent);
            p.feed(&chunk[..n]);
            assert_eq!(p.next(), Ok(None));
            assert_eq!(p.buffered(), 0, "skipped bytes are not kept");
            sent += n;
        }
        p.feed(b"\r\n+OK\r\n");
        assert_eq!(p.next(), Ok(Some(Value::TooLarge(1_000_000))));
        assert_eq!(p.next(), Ok(Some(Value::Simple(b"OK".to_vec()))));
    }

    #[test]
    fn parser_rejects_what_it_does_not_bound_or_understand() {
        let long = [b'+']
            .iter()
            .chain(&[b'a'; MAX_LINE + 10])
            .copied()
            .collect::<Vec<_>>();
        assert_eq!(parse_all(&long, 10), Err(RespError::LineTooLong));
        assert_eq!(parse_all(b"*65\r\n", 10), Err(RespError::ArrayTooLarge));
        assert_eq!(
            parse_all(b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n", 10),
            Err(RespError::ArrayTooLarge)
        );
        for bad in [
            &b"?x\r\n"[..],
            b":12a\r\n",
            b"$-2\r\n",
            b"*-5\r\n",
            b"$2\r\nabcd",
            b"\r\n",
            b"$99999999999999999999999\r\n",
        ] {
            assert!(
                matches!(parse_all(bad, 10), Err(RespError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn parser_bounds_an_array_and_a_reply_by_its_own_limits() {
        let mut p = Parser::with_bounds(10, 100, 12);
        p.feed(b"*70\r\n");
        assert_eq!(p.next(), Ok(None), "70 elements fit a bound of 100");
        let mut p = Parser::with_bounds(10, 100, 12);
        p.feed(b"*3\r\n$5\r\nabcde\r\n$5\r\nabcde\r\n$5\r\n");
        assert_eq!(p.next(), Err(RespError::ReplyTooLarge), "15 bytes past 12");
        let mut p = Parser::with_bounds(10, 100, 12);
        p.feed(b"$8\r\nabcdefgh\r\n$8\r\nabcdefgh\r\n");
        assert!(matches!(p.next(), Ok(Some(Value::Bulk(_)))));
        assert!(
            matches!(p.next(), Ok(Some(Value::Bulk(_)))),
            "the bound is per reply"
        );
        assert_eq!(Parser::with_bounds(10, 100, 12).max_array, 100);
        let mut p = Parser::with_bounds(10, 100, 1000);
        p.feed(b"*101\r\n");
        assert_eq!(p.next(), Err(RespError::ArrayTooLarge));
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        command(&mut out, &[b"PUBLISH", b"c10k:t", b"a\r\nb"]);
        assert_eq!(out, b"*3\r\n$7\r\nPUBLISH\r\n$6\r\nc10k:t\r\n$4\r\na\r\nb\r\n");
        assert_eq!(bulk_overhead(4), "$4\r\n\r\n".len());
        assert_eq!(bulk_overhead(12345), "$12345\r\n\r\n".len());
        let mut p = Parser::new(100);
        p.feed(&out);
        assert!(matches!(p.next(), Ok(Some(Value::Array(v))) if v[2] == Value::Bulk(b"a\r\nb".to_vec())));
    }
}
