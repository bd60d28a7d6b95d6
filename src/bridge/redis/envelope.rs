//! A message's form on a Redis channel, and the `PUBLISH` command that carries it.
//!
//! `node id (16 bytes) | kind (1 byte: 1 text, 2 binary) | payload`, on the channel
//! `prefix + topic`.

use std::io::Write as _;

use crate::proto::MessageKind;

use super::resp;

/// Bytes of an envelope before its payload.
pub(crate) const HEADER: usize = 17;

const PUBLISH: &[u8] = b"*3\r\n$7\r\nPUBLISH\r\n";

/// The length of the `PUBLISH` command for a topic and a payload of these lengths.
pub(crate) fn publish_len(prefix: &str, topic: &str, payload: usize) -> usize {
    let channel = prefix.len() + topic.len();
    let envelope = HEADER + payload;
    PUBLISH.len() + resp::bulk_overhead(channel) + channel + resp::bulk_overhead(envelope) + envelope
}

/// The `PUBLISH` command of a message, exactly [`publish_len`] bytes.
pub(crate) fn publish(
    prefix: &str,
    topic: &str,
    node: &[u8; 16],
    kind: MessageKind,
    payload: &[u8],
) -> Vec<u8> {
    let mut v = Vec::with_capacity(publish_len(prefix, topic, payload.len()));
    v.extend_from_slice(PUBLISH);
    let _ = write!(v, "${}\r\n{prefix}{topic}\r\n", prefix.len() + topic.len());
    let _ = write!(v, "${}\r\n", HEADER + payload.len());
    v.extend_from_slice(node);
    v.push(match kind {
        MessageKind::Text => 1,
        MessageKind::Binary => 2,
    });
    v.extend_from_slice(payload);
    v.extend_from_slice(b"\r\n");
    v
}

/// Splits an envelope: (node, kind, payload); `None` if it is not one (a text payload must be
/// UTF-8).
pub(crate) fn open(bytes: &[u8]) -> Option<(&[u8], MessageKind, &[u8])> {
    let (node, rest) = bytes.split_at_checked(16)?;
    let (&k, payload) = rest.split_first()?;
    let kind = match k {
        1 => MessageKind::Text,
        2 => MessageKind::Binary,
        _ => return None,
    };
    if kind == MessageKind::Text && std::str::from_utf8(payload).is_err() {
        return None;
    }
    Some((node, kind, payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::redis::resp::{Parser, Value};

    #[test]
    fn envelopes_round_trip_through_a_publish_command_and_reject_garbage() {
        let node = [7u8; 16];
        for (kind, payload) in [
            (MessageKind::Text, &b"hi"[..]),
            (MessageKind::Binary, &[0xff; 300][..]),
        ] {
            let cmd = publish("c10k:", "room", &node, kind, payload);
            assert_eq!(cmd.len(), publish_len("c10k:", "room", payload.len()));
            let mut p = Parser::new(1000);
            p.feed(&cmd);
            let Ok(Some(Value::Array(args))) = p.next() else {
                panic!("not a command")
            };
            assert_eq!(args[0], Value::Bulk(b"PUBLISH".to_vec()));
            assert_eq!(args[1], Value::Bulk(b"c10k:room".to_vec()));
            let envelope = args[2].bytes().unwrap();
            assert_eq!(open(envelope), Some((&node[..], kind, payload)));
        }
        assert_eq!(open(&[1, 2, 3]), None);
        let mut bad = node.to_vec();
        bad.extend_from_slice(&[1, 0xff]);
        assert_eq!(open(&bad), None, "text that is not UTF-8");
        bad[16] = 9;
        assert_eq!(open(&bad), None, "an unknown kind");
    }
}
