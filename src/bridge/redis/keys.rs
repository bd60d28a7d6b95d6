//! The names of a topic's keys and channel in streams mode, the cluster slot they live in, and
//! the random epochs a new history is given.
//!
//! A topic's three names share one hash tag, so they share one cluster slot:
//!
//! | what | name |
//! |---|---|
//! | the stream of its messages | `PREFIX{TAG}:s` |
//! | its meta hash (`epoch`, `last` offset) | `PREFIX{TAG}:m` |
//! | its live channel | `PREFIX{TAG}` |
//!
//! `TAG` is the topic with `%` written `%25` and `}` written `%7D` (so the tag ends at the `}`
//! the bridge puts there, and two topics never share a name), and the empty topic written `%`
//! (Redis hashes a whole key whose tag is empty, which would split the topic's keys across
//! slots). The prefix may hold neither `{` nor `}`: the tag is the first `{...}` of a key.

use std::sync::atomic::{AtomicU64, Ordering};

/// How many slots a Redis Cluster has.
pub(crate) const SLOTS: u16 = 16384;

/// The names of one topic's keys and channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicKeys {
    /// The live channel, `PREFIX{TAG}`.
    pub(crate) channel: Vec<u8>,
    /// The stream, `PREFIX{TAG}:s`.
    pub(crate) stream: Vec<u8>,
    /// The meta hash, `PREFIX{TAG}:m`.
    pub(crate) meta: Vec<u8>,
    /// The cluster slot of all three.
    pub(crate) slot: u16,
}

impl TopicKeys {
    /// The names of `topic`'s keys under `prefix` (which holds no brace).
    pub(crate) fn new(prefix: &str, topic: &str) -> Self {
        let mut tag = String::with_capacity(topic.len() + 1);
        if topic.is_empty() {
            tag.push('%');
        }
        for c in topic.chars() {
            match c {
                '%' => tag.push_str("%25"),
                '}' => tag.push_str("%7D"),
                c => tag.push(c),
            }
        }
        let channel = format!("{prefix}{{{tag}}}").into_bytes();
        let slot = slot(&channel);
        let with = |suffix: &[u8]| [&channel[..], suffix].concat();
        Self {
            stream: with(b":s"),
            meta: with(b":m"),
            channel,
            slot,
        }
    }
}

/// Whether `prefix` can name keys (it holds no brace).
pub(crate) fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.contains(['{', '}']) {
        return Err(format!(
            "Redis bridge: the prefix {prefix:?} holds a brace, which would change the keys' cluster slots"
        ));
    }
    Ok(())
}

/// The cluster slot of a key: CRC16 of its hash tag (the bytes between its first `{` and the
/// first `}` after it, when there are some) or of the whole key, modulo 16384.
pub(crate) fn slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16(hashed) % SLOTS
}

/// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), as Redis Cluster uses.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Random epochs for new histories: each call gives another (a node's random seed, then
/// splitmix64 of a counter), so an epoch made after Redis lost a topic's keys is new.
#[derive(Debug)]
pub(crate) struct Epochs {
    seed: u64,
    next: AtomicU64,
}

impl Epochs {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            seed,
            next: AtomicU64::new(0),
        }
    }

    /// A fresh candidate epoch, never 0 (0 means "none known").
    pub(crate) fn candidate(&self) -> u64 {
        let mut z = self.seed.wrapping_add(
            self.next
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis_cluster_and_follow_hash_tags() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"));
        assert_ne!(
            slot(b"foo{}{bar}"),
            slot(b"bar"),
            "an empty tag hashes the whole key"
        );
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
        assert_eq!(slot(b"foo{bar}{zap}"), slot(b"bar"));
    }

    #[test]
    fn a_topics_keys_share_a_slot_whatever_its_braces() {
        for topic in ["room", "", "}", "{", "a}b", "{x}", "%7D", "}}{{", "é"] {
            let k = TopicKeys::new("c10k:", topic);
            assert_eq!(slot(&k.stream), k.slot, "{topic:?}");
            assert_eq!(slot(&k.meta), k.slot, "{topic:?}");
            assert_eq!(slot(&k.channel), k.slot, "{topic:?}");
        }
        assert_eq!(TopicKeys::new("p:", "room").stream, b"p:{room}:s");
        assert_eq!(TopicKeys::new("p:", "a}b").channel, b"p:{a%7Db}");
        // Escaping keeps names apart.
        let names: std::collections::HashSet<_> = ["}", "%7D", "%", "", "%25"]
            .iter()
            .map(|t| TopicKeys::new("p:", t).channel)
            .collect();
        assert_eq!(names.len(), 5);
        assert!(check_prefix("c10k:").is_ok());
        assert!(check_prefix("c{10k:").is_err());
    }

    #[test]
    fn epochs_differ_between_calls_and_nodes() {
        let a = Epochs::new(1);
        let b = Epochs::new(2);
        let xs: std::collections::HashSet<u64> = (0..100)
            .map(|_| a.candidate())
            .chain((0..100).map(|_| b.candidate()))
            .collect();
        assert_eq!(xs.len(), 200);
        assert!(!xs.contains(&0));
    }
}
