//! The handler with the per-connection states it declared ([`Handler::State`]).
//!
//! The states live beside the connection slab, in a vector indexed by the same slab key: the
//! engine stays free of the handler's type (the slab and the shard are not generic), the message
//! path indexes a vector (no map lookup), and a handler whose state is `()` costs nothing (a
//! vector of a zero-sized type never allocates).

use super::handler::Handler;

/// A shard's handler and its connections' states.
#[derive(Debug)]
pub(super) struct App<H: Handler> {
    pub(super) handler: H,
    pub(super) states: States<H::State>,
}

impl<H: Handler> App<H> {
    pub(super) fn new(handler: H) -> Self {
        Self {
            handler,
            states: States(Vec::new()),
        }
    }
}

/// The states of the connections, by slab key.
#[derive(Debug)]
pub(super) struct States<S>(Vec<S>);

impl<S: Default> States<S> {
    /// The state of the connection in slot `key`.
    #[inline]
    pub(super) fn get(&mut self, key: usize) -> &mut S {
        if key >= self.0.len() {
            self.0.resize_with(key + 1, S::default);
        }
        &mut self.0[key]
    }

    /// Sets the state of the connection that opened in slot `key`.
    pub(super) fn set(&mut self, key: usize, state: S) {
        *self.get(key) = state;
    }

    /// Takes the state of the connection that left slot `key` (the slot keeps a default).
    pub(super) fn take(&mut self, key: usize) -> S {
        match self.0.get_mut(key) {
            Some(s) => std::mem::take(s),
            None => S::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_their_slot_and_leave_a_default() {
        let mut s = States::<String>(Vec::new());
        s.set(3, "ann".to_owned());
        s.get(1).push_str("bob");
        assert_eq!(s.get(3), "ann");
        assert_eq!(s.take(3), "ann");
        assert_eq!(s.get(3), "");
        assert_eq!(s.take(9), "", "a slot never set has the default");
        assert_eq!(s.take(1), "bob");
    }

    #[test]
    fn unit_states_take_no_memory() {
        let mut s = States::<()>(Vec::new());
        s.set(100_000, ());
        assert_eq!(std::mem::size_of_val(&s.0[..]), 0);
    }
}
