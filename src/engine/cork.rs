//! The cork: output gathered for the connection whose input is being handled, so that the
//! replies to a batch of messages (and the pongs and close echoes the protocol writes) go out
//! in one write when the input is done.

/// Output gathered for one connection at a time.
#[derive(Debug, Default)]
pub(crate) struct Cork {
    /// The connection whose output is gathered, while its input is handled.
    owner: Option<usize>,
    buf: Vec<u8>,
}

impl Cork {
    /// Starts gathering for connection `key`.
    pub(crate) fn begin(&mut self, key: usize) {
        debug_assert!(
            self.buf.is_empty(),
            "output gathered for {:?} was not written",
            self.owner
        );
        self.owner = Some(key);
    }

    /// Stops gathering; what was gathered must have been taken.
    pub(crate) fn end(&mut self) {
        debug_assert!(self.buf.is_empty());
        self.owner = None;
    }

    /// Whether output for `key` is gathered now.
    pub(crate) fn holds(&self, key: usize) -> bool {
        self.owner == Some(key)
    }

    /// Bytes gathered for `key` (0 for any other connection).
    pub(crate) fn gathered(&self, key: usize) -> usize {
        if self.holds(key) { self.buf.len() } else { 0 }
    }

    /// The buffer to gather into.
    pub(crate) fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Takes what was gathered, to write it; hand the buffer back with [`Cork::restore`].
    pub(crate) fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Gives back the buffer [`Cork::take`] took, emptied.
    pub(crate) fn restore(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        self.buf = buf;
    }
}
