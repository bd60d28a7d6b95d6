//! Which end of a connection this is: a leaf, so that the connection and the extensions it
//! negotiates can both name it without importing each other.

/// Which end of the connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepts connections; expects masked frames, sends unmasked ones.
    Server,
    /// Opens connections; sends masked frames, expects unmasked ones.
    Client,
}
