//! Commands of streams mode, routed to the Redis that holds their keys: one Redis, or the
//! masters of a Redis Cluster.
//!
//! On one Redis, every slot is that server's. On a cluster, the router keeps the slot map
//! (`CLUSTER SLOTS`, asked of any node it knows: those of the map, then those of the URL) and
//! one connection per master, opened when a command is first routed there. A command is sent to
//! the master of its slot; a `-MOVED` reply marks the map stale and sends the command where it
//! points, an `-ASK` reply sends `ASKING` and the command there, a `-NOSCRIPT` reply loads the
//! scripts on that connection and sends the command again (at most [`REDIRECTS`] times in
//! all). A connection that fails is dropped and the map marked stale: the next command refreshes
//! it first (at most once per [`REFRESH_EVERY`]), which is how a failover is followed: once the
//! cluster has promoted a replica, the map names it.
//!
//! Every read and write is bounded by the I/O timeout, every reply by the parser's bounds (the
//! largest is a topic's history: `4 * history_len + 2` elements, `max_history_bytes` of
//! payload), the slot map by [`MAX_RANGES`] ranges.

use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};

use super::RedisLimits;
use super::keys::SLOTS;
use super::link::{self, Link, Target};
use super::resp::{self, Parser, Value};
use super::script;

/// Redirections and retries of one command at most.
const REDIRECTS: usize = 4;
/// The map is asked again at most this often.
const REFRESH_EVERY: Duration = Duration::from_millis(100);
/// Slot ranges of a cluster map at most (a map of more is refused as malformed).
pub(crate) const MAX_RANGES: usize = 16384;
/// No node owns the slot (yet).
const NONE: u16 = u16::MAX;

/// The bounds of the replies a command connection reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReplyBounds {
    pub(crate) max_bulk: usize,
    pub(crate) max_array: usize,
    pub(crate) max_reply: usize,
}

impl ReplyBounds {
    pub(crate) fn of(limits: &RedisLimits) -> Self {
        let history = limits.history_bytes();
        Self {
            max_bulk: limits.max_message_size.max(64),
            max_array: (limits.history_len.saturating_mul(4).saturating_add(2)).max(MAX_RANGES),
            max_reply: history
                .saturating_add(limits.history_len.saturating_mul(128))
                .saturating_add(1 << 20),
        }
    }
}

/// What came of one command of a pipeline.
pub(crate) type Outcome = Result<Value, io::Error>;

/// Routes commands by slot (see the module docs).
#[derive(Debug)]
pub(crate) struct Router {
    seeds: Vec<Target>,
    cluster: bool,
    limits: RedisLimits,
    bounds: ReplyBounds,
    /// The master of each slot, an index into `nodes`.
    slots: Vec<u16>,
    nodes: Vec<Target>,
    links: HashMap<String, Link>,
    stale: bool,
    refreshed: Option<Instant>,
}

impl Router {
    /// A router to one Redis (`seeds` has one target, `cluster` false) or to the cluster that
    /// any of `seeds` is a node of.
    pub(crate) fn new(seeds: Vec<Target>, cluster: bool, limits: RedisLimits) -> Self {
        let mut r = Self {
            nodes: Vec::new(),
            slots: vec![NONE; usize::from(SLOTS)],
            bounds: ReplyBounds::of(&limits),
            seeds,
            cluster,
            limits,
            links: HashMap::new(),
            stale: cluster,
            refreshed: None,
        };
        if !cluster {
            r.nodes = r.seeds.clone();
            r.slots.fill(0);
        }
        r
    }

    /// The node that owns `slot` (refreshing a stale map first); `None` if none is known.
    pub(crate) fn owner(&mut self, slot: u16) -> Option<Target> {
        if self.stale {
            self.refresh();
        }
        let i = *self.slots.get(usize::from(slot))?;
        self.nodes.get(usize::from(i)).cloned()
    }

    /// The map may be out of date: refreshed before the next command.
    pub(crate) fn mark_stale(&mut self) {
        if self.cluster {
            self.stale = true;
        }
    }

    /// Asks any known node for the slot map (at most once per [`REFRESH_EVERY`]). False if none
    /// answered with one.
    pub(crate) fn refresh(&mut self) -> bool {
        if !self.cluster {
            return true;
        }
        if self.refreshed.is_some_and(|t| t.elapsed() < REFRESH_EVERY) {
            return false;
        }
        self.refreshed = Some(Instant::now());
        let mut candidates: Vec<Target> = self.nodes.clone();
        candidates.extend(self.seeds.iter().cloned());
        let mut seen = std::collections::HashSet::new();
        for node in candidates {
            if !seen.insert(node.addr()) {
                continue;
            }
            let mut cmd = Vec::new();
            resp::command(&mut cmd, &[b"CLUSTER", b"SLOTS"]);
            match self.exchange(&node, &cmd, false) {
                Ok(v) => {
                    if let Some((nodes, slots)) = slot_map(&v, &node) {
                        self.nodes = nodes;
                        self.slots = slots;
                        self.stale = false;
                        return true;
                    }
                    log::warn!("redis bridge: {} sent no usable slot map", node.addr());
                }
                Err(e) => log::debug!("redis bridge: slot map from {}: {e}", node.addr()),
            }
        }
        false
    }

    /// Sends one command for `slot` and reads its reply, following redirections. An error
    /// reply that is not a redirection comes back as `Ok(Value::Error)`.
    pub(crate) fn call(&mut self, slot: u16, cmd: &[u8]) -> Outcome {
        let mut target = self.owner(slot);
        let mut asking = false;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no Redis node owns the slot");
        for _ in 0..REDIRECTS {
            let Some(node) = target.take() else {
                break;
            };
            match self.exchange(&node, cmd, asking) {
                Ok(Value::Error(e)) => match redirect(&e) {
                    Some(Redirect::Moved(addr)) => {
                        self.mark_stale();
                        target = self.node_at(&addr);
                        asking = false;
                    }
                    Some(Redirect::Ask(addr)) => {
                        target = self.node_at(&addr);
                        asking = true;
                    }
                    Some(Redirect::NoScript) => {
                        self.load_scripts(&node)?;
                        target = Some(node);
                    }
                    None => return Ok(Value::Error(e)),
                },
                Ok(v) => return Ok(v),
                Err(e) => {
                    self.mark_stale();
                    last = e;
                    break;
                }
            }
            last = io::Error::other("too many redirections");
        }
        Err(last)
    }

    /// Sends commands, each for its slot: one pipeline per node, then the replies. The outcome
    /// of each, in order. A node whose connection fails fails its commands that had no reply.
    pub(crate) fn pipeline(&mut self, items: &[(u16, &[u8])]) -> Vec<Outcome> {
        let mut out: Vec<Option<Outcome>> = (0..items.len()).map(|_| None).collect();
        let mut by_node: HashMap<String, (Target, Vec<usize>)> = HashMap::new();
        for (i, (slot, _)) in items.iter().enumerate() {
            match self.owner(*slot) {
                Some(node) => by_node
                    .entry(node.addr())
                    .or_insert_with(|| (node, Vec::new()))
                    .1
                    .push(i),
                None => {
                    out[i] = Some(Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        "no Redis node owns the slot",
                    )));
                }
            }
        }
        for (_, (node, idx)) in by_node {
            let parts: Vec<&[u8]> = idx.iter().map(|&i| items[i].1).collect();
            let replies = self.exchange_many(&node, &parts);
            for (k, &i) in idx.iter().enumerate() {
                out[i] = Some(match replies.get(k) {
                    Some(Ok(Value::Error(e))) if redirect(e).is_some() => self.call(items[i].0, items[i].1),
                    Some(Ok(v)) => Ok(v.clone()),
                    Some(Err(e)) => Err(io::Error::new(e.kind(), e.to_string())),
                    None => Err(io::Error::other("no reply")),
                });
            }
        }
        out.into_iter()
            .map(|o| o.unwrap_or_else(|| Err(io::Error::other("not sent"))))
            .collect()
    }

    /// Drops every connection (the bridge stops, or a fresh start is wanted).
    pub(crate) fn close(&mut self) {
        self.links.clear();
    }

    /// The node named `host:port` in a redirection.
    fn node_at(&self, addr: &str) -> Option<Target> {
        if let Some(n) = self.nodes.iter().find(|n| n.addr() == addr) {
            return Some(n.clone());
        }
        let (host, port) = addr.rsplit_once(':')?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Some(self.seeds.first()?.at(host, port.parse().ok()?))
    }

    /// The connection to `node`, opened (and its scripts loaded) if there is none.
    fn link(&mut self, node: &Target) -> io::Result<&mut Link> {
        let addr = node.addr();
        if !self.links.contains_key(&addr) {
            let l = &self.limits;
            let b = self.bounds;
            let parser = Parser::with_bounds(b.max_bulk, b.max_array, b.max_reply);
            let link = Link::open_with(node, l.connect_timeout, l.io_timeout, parser)?;
            self.links.insert(addr.clone(), link);
            if let Err(e) = self.load_scripts(node) {
                self.links.remove(&addr);
                return Err(e);
            }
        }
        self.links
            .get_mut(&addr)
            .ok_or_else(|| io::Error::other("no connection"))
    }

    /// `SCRIPT LOAD`s both scripts on the connection to `node`.
    fn load_scripts(&mut self, node: &Target) -> io::Result<()> {
        let (a, b) = (script::load(script::PUBLISH), script::load(script::READ));
        let io = self.limits.io_timeout;
        let link = self
            .links
            .get_mut(&node.addr())
            .ok_or_else(|| io::Error::other("no connection"))?;
        let result = (|| {
            link.send(&[&a, &b], Instant::now() + io)?;
            let deadline = Instant::now() + io;
            for _ in 0..2 {
                match link.reply(deadline)? {
                    Value::Bulk(_) => {}
                    other => return Err(link::unexpected(&other)),
                }
            }
            Ok(())
        })();
        if result.is_err() {
            self.links.remove(&node.addr());
        }
        result
    }

    /// One command on the connection to `node` (after `ASKING` if `asking`): its reply. A
    /// failed connection is dropped.
    fn exchange(&mut self, node: &Target, cmd: &[u8], asking: bool) -> Outcome {
        let mut parts: Vec<&[u8]> = Vec::with_capacity(2);
        let mut ask = Vec::new();
        if asking {
            resp::command(&mut ask, &[b"ASKING"]);
            parts.push(&ask);
        }
        parts.push(cmd);
        let mut replies = self.exchange_many(node, &parts);
        let last = replies.pop().unwrap_or_else(|| Err(io::Error::other("no reply")));
        if let Some(Ok(Value::Error(e))) = replies.first() {
            return Ok(Value::Error(e.clone()));
        }
        last
    }

    /// A pipeline on the connection to `node`: the replies that came, then the error that ended
    /// it if any (fewer outcomes than `parts` then).
    fn exchange_many(&mut self, node: &Target, parts: &[&[u8]]) -> Vec<Outcome> {
        let io = self.limits.io_timeout;
        let mut out = Vec::with_capacity(parts.len());
        let failed = match self.link(node) {
            Err(e) => Some(e),
            Ok(link) => (|| {
                link.send(parts, Instant::now() + io)?;
                let deadline = Instant::now() + io;
                for _ in parts {
                    out.push(Ok(link.reply(deadline)?));
                }
                Ok::<(), io::Error>(())
            })()
            .err(),
        };
        if let Some(e) = failed {
            self.links.remove(&node.addr());
            self.mark_stale();
            out.push(Err(e));
        }
        out
    }
}

/// What an error reply asks for.
#[derive(Debug, PartialEq, Eq)]
enum Redirect {
    Moved(String),
    Ask(String),
    NoScript,
}

fn redirect(e: &[u8]) -> Option<Redirect> {
    let s = std::str::from_utf8(e).ok()?;
    let mut words = s.split(' ');
    match words.next()? {
        "MOVED" => Some(Redirect::Moved(words.nth(1)?.to_owned())),
        "ASK" => Some(Redirect::Ask(words.nth(1)?.to_owned())),
        "NOSCRIPT" => Some(Redirect::NoScript),
        _ => None,
    }
}

/// A `CLUSTER SLOTS` reply as (masters, the master of each slot); `asked` stands in for a node
/// that names no host of its own.
fn slot_map(v: &Value, asked: &Target) -> Option<(Vec<Target>, Vec<u16>)> {
    let Value::Array(ranges) = v else {
        return None;
    };
    let mut nodes: Vec<Target> = Vec::new();
    let mut slots = vec![NONE; usize::from(SLOTS)];
    for range in ranges {
        let Value::Array(r) = range else {
            return None;
        };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (r.first(), r.get(1), r.get(2))
        else {
            return None;
        };
        let host = master.first()?.bytes()?;
        let host = std::str::from_utf8(host).ok()?;
        let Some(Value::Int(port)) = master.get(1) else {
            return None;
        };
        let port = u16::try_from(*port).ok()?;
        let node = if host.is_empty() || host == "?" {
            asked.at(&asked_host(asked), port)
        } else {
            asked.at(host, port)
        };
        let i = match nodes.iter().position(|n| n.addr() == node.addr()) {
            Some(i) => i,
            None => {
                nodes.push(node);
                nodes.len() - 1
            }
        };
        let (start, end) = (usize::try_from(*start).ok()?, usize::try_from(*end).ok()?);
        if start > end || end >= usize::from(SLOTS) {
            return None;
        }
        slots[start..=end].fill(u16::try_from(i).ok()?);
    }
    (!nodes.is_empty()).then_some((nodes, slots))
}

fn asked_host(t: &Target) -> String {
    let addr = t.addr();
    let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_of_a_whole_history_fits_the_reply_bounds() {
        let limits = RedisLimits {
            history_len: 5000,
            max_message_size: 1000,
            max_history_bytes: 1 << 20,
            ..RedisLimits::default()
        };
        let b = ReplyBounds::of(&limits);
        // Four elements per entry, and the epoch and the last offset.
        assert!(b.max_array >= 4 * 5000 + 2);
        // Every entry's id, kind and node beside its payload.
        assert!(b.max_reply >= (1 << 20) + 5000 * (22 + 1 + 32));
        assert_eq!(b.max_bulk, 1000);
    }

    #[test]
    fn redirections_and_slot_maps_parse() {
        assert_eq!(
            redirect(b"MOVED 3999 127.0.0.1:6381"),
            Some(Redirect::Moved("127.0.0.1:6381".into()))
        );
        assert_eq!(
            redirect(b"ASK 3999 10.0.0.1:7000"),
            Some(Redirect::Ask("10.0.0.1:7000".into()))
        );
        assert_eq!(redirect(b"NOSCRIPT No matching script"), Some(Redirect::NoScript));
        assert_eq!(redirect(b"ERR wrong"), None);

        let asked = Target::parse("redis://:pw@10.0.0.9:7000").unwrap();
        let node = |h: &[u8], p| {
            Value::Array(vec![
                Value::Bulk(h.to_vec()),
                Value::Int(p),
                Value::Bulk(b"id".to_vec()),
            ])
        };
        let map = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node(b"10.0.0.1", 7000),
                node(b"10.0.0.4", 7003),
            ]),
            Value::Array(vec![Value::Int(5461), Value::Int(10922), node(b"", 7001)]),
            Value::Array(vec![
                Value::Int(10923),
                Value::Int(16383),
                node(b"10.0.0.1", 7000),
            ]),
        ]);
        let (nodes, slots) = slot_map(&map, &asked).unwrap();
        assert_eq!(nodes.len(), 2, "masters only, each once");
        assert_eq!(nodes[1].addr(), "10.0.0.9:7001", "no host: the node asked");
        assert_eq!((slots[0], slots[5461], slots[16383]), (0, 1, 0));
        assert_eq!(nodes[0], asked.at("10.0.0.1", 7000), "credentials carried over");
        let bad = Value::Array(vec![Value::Array(vec![
            Value::Int(10),
            Value::Int(20000),
            node(b"h", 1),
        ])]);
        assert!(slot_map(&bad, &asked).is_none());
    }
}
