//! A shard's topics: which of its connections subscribe to what.
//!
//! Topics are interned per shard: a name maps to a small id; a topic holds the slab keys of its
//! subscribers in a vector (the fan-out loop walks it), and each connection keeps the ids of its
//! topics in a vector of its own (what leaving them all walks). One map from (topic,
//! connection) to the two positions makes subscribing, unsubscribing and asking "is it
//! subscribed" O(1) whatever the number of topics or subscribers: removal swaps the last
//! element into the freed place of each vector and fixes that element's position in the map.
//! A topic with no subscribers left is forgotten.
//!
//! With history on (see `history.rs`), each subscription also has its seam, in a vector beside
//! the subscribers: [`PLAIN`] for one that takes messages as they are, [`WAITING`] while its
//! resume waits for the topic's history, otherwise the node's sequence number at its resume
//! (it takes what was posted after). Each topic remembers the last epoch and offset the shard
//! took for it.

use std::collections::HashMap;
use std::sync::Arc;

use slab::Slab;

use super::thin::ThinVec;

/// The seam of a subscription that takes messages as they are, without offsets.
pub(crate) const PLAIN: u64 = u64::MAX;
/// The seam of a subscription whose resume waits for the topic's history to be loaded.
pub(crate) const WAITING: u64 = u64::MAX - 1;

/// The last message of a topic a shard took: its epoch (0: none yet) and offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Taken {
    pub(crate) epoch: u64,
    pub(crate) offset: u64,
}

#[derive(Debug)]
struct Topic {
    name: Arc<str>,
    subscribers: Vec<u32>,
    /// Each subscriber's seam, in the same order.
    seams: Vec<u64>,
    taken: Taken,
}

/// A connection's side: the ids of the topics it is in.
pub(crate) type Memberships = ThinVec<u32>;

/// Where one subscription sits: its place in the topic's subscribers, and in the connection's
/// memberships.
#[derive(Debug, Clone, Copy)]
struct Place {
    in_topic: u32,
    in_conn: u32,
}

#[derive(Debug, Default)]
pub(crate) struct Topics {
    ids: HashMap<Arc<str>, u32>,
    topics: Slab<Topic>,
    /// Every subscription, by (topic id, connection key).
    places: HashMap<(u32, u32), Place>,
}

/// What a change did to the topic as a whole (for a node-wide registry such as a broker bridge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Nothing visible outside the shard.
    None,
    /// The topic got its first subscriber on this shard.
    First,
    /// The topic lost its last subscriber on this shard.
    Last,
}

impl Topics {
    /// The id of a topic that has subscribers here.
    pub(crate) fn id(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The subscribers of topic `id`.
    pub(crate) fn subscribers(&self, id: u32) -> &[u32] {
        self.topics.get(id as usize).map_or(&[], |t| &t.subscribers)
    }

    /// The name of topic `id`.
    pub(crate) fn name(&self, id: u32) -> Option<&Arc<str>> {
        self.topics.get(id as usize).map(|t| &t.name)
    }

    /// Number of topics with subscribers here.
    pub(crate) fn len(&self) -> usize {
        self.topics.len()
    }

    /// Whether connection `key` subscribes to topic `id`.
    pub(crate) fn has(&self, id: u32, key: u32) -> bool {
        self.places.contains_key(&(id, key))
    }

    /// The seams of topic `id`'s subscribers, in the order of [`Topics::subscribers`].
    pub(crate) fn seams(&self, id: u32) -> &[u64] {
        self.topics.get(id as usize).map_or(&[], |t| &t.seams)
    }

    /// The seam of connection `key`'s subscription to topic `id`.
    pub(crate) fn seam(&self, id: u32, key: u32) -> Option<u64> {
        let place = self.places.get(&(id, key))?;
        Some(self.topics[id as usize].seams[place.in_topic as usize])
    }

    /// Sets the seam of connection `key`'s subscription to topic `id`.
    pub(crate) fn set_seam(&mut self, id: u32, key: u32, seam: u64) {
        if let Some(place) = self.places.get(&(id, key)) {
            self.topics[id as usize].seams[place.in_topic as usize] = seam;
        }
    }

    /// The last message of topic `id` this shard took.
    pub(crate) fn taken(&mut self, id: u32) -> Option<&mut Taken> {
        self.topics.get_mut(id as usize).map(|t| &mut t.taken)
    }

    /// Adds connection `key` (whose memberships are `mine`) to `name`, with seam [`PLAIN`].
    /// Returns `None` if it was already subscribed.
    pub(crate) fn subscribe(&mut self, key: u32, mine: &mut Memberships, name: &str) -> Option<Change> {
        let (id, change) = match self.ids.get(name) {
            Some(&id) => (id, Change::None),
            None => {
                let name: Arc<str> = Arc::from(name);
                let id = self.topics.insert(Topic {
                    name: Arc::clone(&name),
                    subscribers: Vec::new(),
                    seams: Vec::new(),
                    taken: Taken::default(),
                }) as u32;
                self.ids.insert(name, id);
                (id, Change::First)
            }
        };
        if self.has(id, key) {
            return None;
        }
        let subs = &mut self.topics[id as usize].subscribers;
        let place = Place {
            in_topic: subs.len() as u32,
            in_conn: mine.len() as u32,
        };
        subs.push(key);
        self.topics[id as usize].seams.push(PLAIN);
        mine.push(id);
        self.places.insert((id, key), place);
        Some(change)
    }

    /// Removes connection `key` (whose memberships are `mine`) from topic `id`. Returns `None`
    /// if it was not subscribed, otherwise what happened to the topic.
    pub(crate) fn unsubscribe(&mut self, key: u32, mine: &mut Memberships, id: u32) -> Option<Change> {
        let place = self.places.remove(&(id, key))?;
        // The connection's last topic takes the freed place in its memberships.
        let at = place.in_conn as usize;
        debug_assert_eq!(mine.get(at), Some(&id));
        mine.swap_remove(at);
        if let Some(&moved) = mine.get(at)
            && let Some(p) = self.places.get_mut(&(moved, key))
        {
            p.in_conn = at as u32;
        }
        // The topic's last subscriber takes the freed place among its subscribers.
        let topic = &mut self.topics[id as usize];
        let at = place.in_topic as usize;
        debug_assert_eq!(topic.subscribers.get(at), Some(&key));
        topic.subscribers.swap_remove(at);
        topic.seams.swap_remove(at);
        if let Some(&moved) = topic.subscribers.get(at)
            && let Some(p) = self.places.get_mut(&(id, moved))
        {
            p.in_topic = at as u32;
        }
        if topic.subscribers.is_empty() {
            let topic = self.topics.remove(id as usize);
            self.ids.remove(&topic.name);
            return Some(Change::Last);
        }
        Some(Change::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks every position the map records against the two vectors.
    fn consistent(t: &Topics, members: &[Memberships]) {
        for (&(id, key), p) in &t.places {
            assert_eq!(t.subscribers(id)[p.in_topic as usize], key);
            assert_eq!(t.seams(id).len(), t.subscribers(id).len());
            assert_eq!(members[key as usize][p.in_conn as usize], id);
        }
        let subscriptions: usize = members.iter().map(|m| m.len()).sum();
        assert_eq!(t.places.len(), subscriptions);
    }

    #[test]
    fn subscribe_and_leave_keep_positions_right() {
        let mut t = Topics::default();
        let mut members: Vec<Memberships> = vec![Memberships::new(); 5];
        for key in 0..5u32 {
            let change = t.subscribe(key, &mut members[key as usize], "room").unwrap();
            assert_eq!(change, if key == 0 { Change::First } else { Change::None });
            t.subscribe(key, &mut members[key as usize], &format!("own-{key}"));
        }
        assert!(t.subscribe(2, &mut members[2], "room").is_none());
        consistent(&t, &members);
        let id = t.id("room").unwrap();
        // Remove 1: 4 moves into its place among the subscribers.
        assert_eq!(t.unsubscribe(1, &mut members[1], id), Some(Change::None));
        assert_eq!(t.subscribers(id), &[0, 4, 2, 3]);
        assert!(!t.has(id, 1) && t.has(id, 4));
        consistent(&t, &members);
        assert_eq!(
            t.unsubscribe(1, &mut members[1], id),
            None,
            "not subscribed any more"
        );
        for key in [4u32, 0, 3, 2] {
            let change = t.unsubscribe(key, &mut members[key as usize], id).unwrap();
            consistent(&t, &members);
            if key == 2 {
                assert_eq!(change, Change::Last);
            }
        }
        assert!(t.id("room").is_none());
        assert_eq!(t.len(), 5, "each connection's own topic is left");
        for key in 0..5u32 {
            let own = t.id(&format!("own-{key}")).unwrap();
            assert_eq!(
                t.unsubscribe(key, &mut members[key as usize], own),
                Some(Change::Last)
            );
        }
        assert_eq!(t.len(), 0);
        assert!(t.places.is_empty());
    }

    #[test]
    fn leaving_a_topic_in_the_middle_of_many_fixes_the_moved_one() {
        let mut t = Topics::default();
        let mut mine = Memberships::new();
        for i in 0..10 {
            t.subscribe(7, &mut mine, &format!("t{i}"));
        }
        let members = |m: &Memberships| {
            let mut v = vec![Memberships::new(); 8];
            v[7] = m.clone();
            v
        };
        let t3 = t.id("t3").unwrap();
        t.unsubscribe(7, &mut mine, t3);
        consistent(&t, &members(&mine));
        let t9 = t.id("t9").unwrap();
        assert_eq!(mine[3], t9, "the last topic took the freed place");
        while let Some(&id) = mine.last() {
            t.unsubscribe(7, &mut mine, id);
        }
        assert_eq!(t.len(), 0);
    }
}
