//! Streams mode's two Lua scripts, the commands that run them, and the forms of what they give
//! back: a topic's history read from Redis, and a message on a topic's live channel.
//!
//! Both scripts take the topic's meta hash (`KEYS[1]`) and stream (`KEYS[2]`), which share a
//! slot, and both first make the topic's epoch when the meta hash has none (Redis lost it, or it
//! is new): the caller's random candidate, an empty stream, `last` 0. So an epoch exists once any
//! node publishes to the topic or reads it, and it changes only when Redis forgot the topic.
//!
//! - [`PUBLISH`]: increments `last`, `XADD`s the message (fields `k` kind, `p` payload, `n` the
//!   publishing node's id) with the id `last-0` (the stream ids are the offsets), trimmed with
//!   `MAXLEN ~`, and publishes it on the live channel (`PUBLISH`, or `SPUBLISH` on a cluster) as
//!   `EPOCH OFFSET KIND NODE\n` + payload. Returns the offset. A stream that is ahead of its
//!   meta hash (its keys were changed by hand) or is not a stream gets a new epoch.
//! - [`READ`]: the epoch, `last`, and entries as flat `id kind payload node` fours: the newest
//!   `count` (in order) when `from` is 0, else those from `from` to `to` (`+`: the end); in both
//!   cases only as many as fit `max bytes` of payload. Given the epoch and `last` the caller knew,
//!   it also catches a history that went backwards under the same epoch (a failover lost writes
//!   that nodes had seen): it makes a new epoch, so no offset ever names two messages.
//!
//! The scripts are sent with `EVALSHA`; a Redis that does not know one (`NOSCRIPT`: restarted,
//! or its script cache flushed) is sent `SCRIPT LOAD` and the command again.

use std::fmt::Write as _;

use sha1::{Digest as _, Sha1};

use super::keys::TopicKeys;
use super::resp::{self, Value};
use crate::proto::MessageKind;

/// Publishes one message (see the module docs).
pub(crate) const PUBLISH: &str = r"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'last', 0)
end
local off = redis.call('HINCRBY', KEYS[1], 'last', 1)
local id = string.format('%d', off)
local added = redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], id .. '-0', 'k', ARGV[3], 'p', ARGV[4], 'n', ARGV[7])
if type(added) == 'table' and added.err then
  -- The stream is ahead of the meta hash, or not a stream: a new epoch, from this message.
  epoch = ARGV[1]
  id = '1'
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'last', 1)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '1-0', 'k', ARGV[3], 'p', ARGV[4], 'n', ARGV[7])
end
redis.call(ARGV[6], ARGV[5], epoch .. ' ' .. id .. ' ' .. ARGV[3] .. ' ' .. ARGV[7] .. '\n' .. ARGV[4])
return tonumber(id)
";

/// Reads a topic's epoch, last offset and entries (see the module docs).
pub(crate) const READ: &str = r"
local function fresh()
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'last', 0)
  return ARGV[1]
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then epoch = fresh() end
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '0')
if epoch == ARGV[6] and last < tonumber(ARGV[7]) then
  epoch = fresh()
  last = 0
end
local out = {epoch, string.format('%d', last)}
local budget = tonumber(ARGV[5])
local entries
if ARGV[2] == '0' then
  entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[4])
else
  entries = redis.call('XRANGE', KEYS[2], ARGV[2], ARGV[3], 'COUNT', ARGV[4])
end
local picked = {}
for _, e in ipairs(entries) do
  local f = e[2]
  local p = f[4] or ''
  budget = budget - #p
  if budget < 0 then break end
  picked[#picked + 1] = {e[1], f[2] or '', p, f[6] or ''}
end
local n = #picked
for i = 1, n do
  local e = picked[i]
  if ARGV[2] == '0' then e = picked[n + 1 - i] end
  out[#out + 1] = e[1]
  out[#out + 1] = e[2]
  out[#out + 1] = e[3]
  out[#out + 1] = e[4]
end
return out
";

/// The SHA1 of a script, in hex, as `EVALSHA` names it.
pub(crate) fn sha(script: &str) -> String {
    Sha1::digest(script.as_bytes())
        .iter()
        .fold(String::with_capacity(40), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The SHA1 of [`READ`], worked out once.
fn read_sha() -> &'static str {
    static SHA: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SHA.get_or_init(|| sha(READ))
}

/// The `SCRIPT LOAD` command of a script.
pub(crate) fn load(script: &str) -> Vec<u8> {
    let mut cmd = Vec::new();
    resp::command(&mut cmd, &[b"SCRIPT", b"LOAD", script.as_bytes()]);
    cmd
}

/// How a message's kind is written in the stream and on the channel.
fn kind_byte(kind: MessageKind) -> &'static [u8] {
    match kind {
        MessageKind::Text => b"1",
        MessageKind::Binary => b"2",
    }
}

fn parse_kind(b: &[u8]) -> Option<MessageKind> {
    match b {
        b"1" => Some(MessageKind::Text),
        b"2" => Some(MessageKind::Binary),
        _ => None,
    }
}

/// Parses a decimal u64.
pub(crate) fn number(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// What publishing one message sends: the publish script's `EVALSHA`.
#[derive(Debug)]
pub(crate) struct PublishArgs<'a> {
    pub(crate) sha: &'a str,
    pub(crate) meta: &'a [u8],
    pub(crate) stream: &'a [u8],
    pub(crate) channel: &'a [u8],
    pub(crate) epoch: u64,
    pub(crate) maxlen: usize,
    pub(crate) kind: MessageKind,
    pub(crate) payload: &'a [u8],
    /// `PUBLISH`, or `SPUBLISH` on a cluster.
    pub(crate) verb: &'a [u8],
    /// The publishing node's id, in hex.
    pub(crate) node: &'a [u8],
}

impl PublishArgs<'_> {
    /// The command, encoded.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let (epoch, maxlen) = (self.epoch.to_string(), self.maxlen.to_string());
        let args: [&[u8]; 12] = [
            b"EVALSHA",
            self.sha.as_bytes(),
            b"2",
            self.meta,
            self.stream,
            epoch.as_bytes(),
            maxlen.as_bytes(),
            kind_byte(self.kind),
            self.payload,
            self.channel,
            self.verb,
            self.node,
        ];
        let mut cmd = Vec::with_capacity(self.len());
        resp::command(&mut cmd, &args);
        cmd
    }

    /// The length of [`encode`](Self::encode)'s command, without making it.
    pub(crate) fn len(&self) -> usize {
        let digits = |n: u64| n.checked_ilog10().map_or(1, |d| d as usize + 1);
        let lens = [
            7,
            self.sha.len(),
            1,
            self.meta.len(),
            self.stream.len(),
            digits(self.epoch),
            resp::decimal_len(self.maxlen),
            1,
            self.payload.len(),
            self.channel.len(),
            self.verb.len(),
            self.node.len(),
        ];
        "*12\r\n".len() + lens.iter().map(|&n| resp::bulk_overhead(n) + n).sum::<usize>()
    }
}

/// Which entries a read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Range {
    /// The newest entries.
    Newest,
    /// Offsets from `from` (included), to `to` (included; `None`: the end).
    From { from: u64, to: Option<u64> },
}

/// The read script's `EVALSHA`: `range`, at most `count` entries and `max_bytes` of payload;
/// `known` is the epoch and last offset the caller had (a history that went backwards under that
/// epoch gets a new one), `candidate` the epoch to make if there is none.
pub(crate) fn read(
    keys: &TopicKeys,
    candidate: u64,
    range: Range,
    count: usize,
    max_bytes: usize,
    known: Option<(u64, u64)>,
) -> Vec<u8> {
    let (from, to) = match range {
        Range::Newest => ("0".to_owned(), "+".to_owned()),
        Range::From { from, to } => (
            from.max(1).to_string(),
            to.map_or_else(|| "+".to_owned(), |t| t.to_string()),
        ),
    };
    let (k_epoch, k_last) = known.map_or((String::new(), "0".to_owned()), |(e, l)| {
        (e.to_string(), l.to_string())
    });
    let (candidate, count, max_bytes) = (
        candidate.to_string(),
        count.max(1).to_string(),
        max_bytes.to_string(),
    );
    let mut cmd = Vec::new();
    resp::command(
        &mut cmd,
        &[
            b"EVALSHA",
            read_sha().as_bytes(),
            b"2",
            &keys.meta,
            &keys.stream,
            candidate.as_bytes(),
            from.as_bytes(),
            to.as_bytes(),
            count.as_bytes(),
            max_bytes.as_bytes(),
            k_epoch.as_bytes(),
            k_last.as_bytes(),
        ],
    );
    cmd
}

/// One message of a topic's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) offset: u64,
    pub(crate) kind: MessageKind,
    pub(crate) payload: Vec<u8>,
    /// The id (hex) of the node that published it.
    pub(crate) node: Vec<u8>,
}

/// A topic's history as the read script gave it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct History {
    pub(crate) epoch: u64,
    /// The topic's last offset (entries may end before it: trimmed, or past the read's bounds).
    pub(crate) last: u64,
    /// Offsets ascending.
    pub(crate) entries: Vec<Entry>,
    /// Entries left out: larger than the message size limit.
    pub(crate) too_large: usize,
    /// Entries left out: not a message of this bridge.
    pub(crate) malformed: usize,
}

/// The read script's reply; `None` if it is not one.
pub(crate) fn history(v: Value) -> Option<History> {
    let Value::Array(items) = v else {
        return None;
    };
    let mut items = items.into_iter();
    let epoch = number(items.next()?.bytes()?)?;
    let last = number(items.next()?.bytes()?)?;
    let mut h = History {
        epoch,
        last,
        ..History::default()
    };
    let rest: Vec<Value> = items.collect();
    if !rest.len().is_multiple_of(4) {
        return None;
    }
    let mut prev = 0;
    for e in rest.chunks(4) {
        let offset = e[0]
            .bytes()
            .and_then(|id| id.strip_suffix(b"-0"))
            .and_then(number);
        let kind = e[1].bytes().and_then(parse_kind);
        match (offset, kind, &e[2]) {
            (Some(o), Some(k), Value::Bulk(p)) if o > prev => {
                if k == MessageKind::Text && std::str::from_utf8(p).is_err() {
                    h.malformed += 1;
                    continue;
                }
                prev = o;
                h.entries.push(Entry {
                    offset: o,
                    kind: k,
                    payload: p.clone(),
                    node: e[3].bytes().unwrap_or_default().to_vec(),
                });
            }
            (_, _, Value::TooLarge(_)) => h.too_large += 1,
            _ => h.malformed += 1,
        }
    }
    Some(h)
}

/// The longest header of a live message (`EPOCH OFFSET KIND NODE\n`: 20 + 1 + 20 + 1 + 1 + 1 +
/// 32 + 1).
pub(crate) const LIVE_HEADER: usize = 77;

/// A message on a live channel.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Live<'a> {
    pub(crate) epoch: u64,
    pub(crate) offset: u64,
    pub(crate) kind: MessageKind,
    pub(crate) node: &'a [u8],
    pub(crate) payload: &'a [u8],
}

/// A message on a live channel; `None` if it is not one (a text payload must be UTF-8).
pub(crate) fn live(bytes: &[u8]) -> Option<Live<'_>> {
    let end = bytes.iter().take(LIVE_HEADER).position(|&b| b == b'\n')?;
    let (header, payload) = (&bytes[..end], &bytes[end + 1..]);
    let mut parts = header.split(|&b| b == b' ');
    let epoch = number(parts.next()?)?;
    let offset = number(parts.next()?)?;
    let kind = parse_kind(parts.next()?)?;
    let node = parts.next()?;
    if parts.next().is_some() || (kind == MessageKind::Text && std::str::from_utf8(payload).is_err()) {
        return None;
    }
    Some(Live {
        epoch,
        offset,
        kind,
        node,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::redis::resp::Parser;

    #[test]
    fn publish_commands_stay_within_their_announced_length() {
        let args = PublishArgs {
            sha: &sha(PUBLISH),
            meta: b"p:{t}:m",
            stream: b"p:{t}:s",
            channel: b"p:{t}",
            epoch: u64::MAX,
            maxlen: usize::MAX,
            kind: MessageKind::Text,
            payload: b"hello",
            verb: b"SPUBLISH",
            node: &[b'f'; 32],
        };
        let cmd = args.encode();
        assert_eq!(cmd.len(), args.len(), "the queue counts what it holds");
        let mut p = Parser::new(100);
        p.feed(&cmd);
        let Ok(Some(Value::Array(a))) = p.next() else {
            panic!()
        };
        assert_eq!(a.len(), 12);
        assert_eq!(a[1].bytes().map(<[u8]>::len), Some(40));
        assert_eq!(a[8], Value::Bulk(b"hello".to_vec()));
    }

    #[test]
    fn history_replies_parse_and_bad_entries_are_counted() {
        let b = |s: &[u8]| Value::Bulk(s.to_vec());
        let reply = Value::Array(vec![
            b(b"77"),
            b(b"9"),
            b(b"5-0"),
            b(b"1"),
            b(b"five"),
            b(b"aa"),
            b(b"6-0"),
            b(b"2"),
            Value::TooLarge(1 << 30),
            b(b"aa"),
            b(b"7-0"),
            b(b"3"),
            b(b"bad kind"),
            b(b"aa"),
            b(b"8-0"),
            b(b"2"),
            b(b"\xff"),
            b(b"bb"),
        ]);
        let h = history(reply).unwrap();
        assert_eq!((h.epoch, h.last, h.too_large, h.malformed), (77, 9, 1, 1));
        let entry = |offset, kind, payload: &[u8], node: &[u8]| Entry {
            offset,
            kind,
            payload: payload.to_vec(),
            node: node.to_vec(),
        };
        assert_eq!(
            h.entries,
            vec![
                entry(5, MessageKind::Text, b"five", b"aa"),
                entry(8, MessageKind::Binary, &[0xff], b"bb")
            ]
        );
        assert_eq!(history(Value::Array(vec![b(b"1")])), None);
        assert_eq!(history(Value::Int(3)), None);
    }

    #[test]
    fn live_messages_parse_and_garbage_is_refused() {
        assert_eq!(
            live(b"12 3 1 ab\nhi there"),
            Some(Live {
                epoch: 12,
                offset: 3,
                kind: MessageKind::Text,
                node: b"ab",
                payload: b"hi there"
            })
        );
        assert_eq!(live(b"12 3 2 ab\n").map(|l| l.payload.len()), Some(0));
        for bad in [
            &b"12 3 1 ab"[..],
            b"x 3 1 ab\nhi",
            b"12 3 9 ab\nhi",
            b"12 3 1\nhi",
            b"12 3 1 ab 4\nhi",
            b"12 3 1 ab\n\xff",
        ] {
            assert_eq!(live(bad), None, "{bad:?}");
        }
        let long = [b'1'; 100];
        assert_eq!(live(&long), None);
        assert_eq!(sha("").len(), 40);
        assert_eq!(sha(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }

    #[test]
    fn garbage_from_redis_is_refused_never_a_panic() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"0123456789 -\n12\xff";
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let _ = live(&bytes);
            // The same bytes as the elements of a read's reply, cut anywhere.
            let items: Vec<Value> = bytes
                .split(|&b| b == b' ')
                .map(|part| match next() % 4 {
                    0 => Value::Int(part.len() as i64),
                    1 => Value::TooLarge(part.len()),
                    _ => Value::Bulk(part.to_vec()),
                })
                .collect();
            if let Some(h) = history(Value::Array(items)) {
                assert!(h.entries.windows(2).all(|w| w[0].offset < w[1].offset));
            }
        }
    }
}
