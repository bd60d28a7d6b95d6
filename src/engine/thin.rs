//! A vector that costs one pointer while it is empty, which is how almost every connection keeps
//! its spilled bytes and its topic memberships almost all the time. Emptying it frees it.

use std::ops::{Deref, DerefMut};

/// A `Vec<T>` behind one nullable pointer: 8 bytes in the slab entry instead of 24, and nothing
/// on the heap while empty.
#[derive(Debug, Clone)]
#[expect(
    clippy::box_collection,
    reason = "the box is the point: one pointer in place of three words"
)]
pub(crate) struct ThinVec<T>(Option<Box<Vec<T>>>);

impl<T> Default for ThinVec<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<T> ThinVec<T> {
    /// An empty vector (no allocation).
    pub(crate) const fn new() -> Self {
        Self(None)
    }

    /// Appends `value`.
    pub(crate) fn push(&mut self, value: T) {
        self.0.get_or_insert_default().push(value);
    }

    /// Removes element `i`, moving the last one into its place; frees the vector if it empties.
    ///
    /// # Panics
    /// If `i` is out of bounds, as `Vec::swap_remove`.
    pub(crate) fn swap_remove(&mut self, i: usize) -> T {
        let v = self.0.as_mut().expect("swap_remove on an empty ThinVec");
        let value = v.swap_remove(i);
        self.release_if_empty();
        value
    }

    /// Empties and frees the vector.
    pub(crate) fn clear(&mut self) {
        self.0 = None;
    }

    /// Takes the elements out, leaving this empty.
    pub(crate) fn take(&mut self) -> Vec<T> {
        self.0.take().map_or_else(Vec::new, |v| *v)
    }

    fn release_if_empty(&mut self) {
        if self.0.as_ref().is_some_and(|v| v.is_empty()) {
            self.0 = None;
        }
    }
}

impl<T: Copy> ThinVec<T> {
    /// Appends a copy of `items` (allocates nothing for an empty slice).
    pub(crate) fn extend_from_slice(&mut self, items: &[T]) {
        if !items.is_empty() {
            self.0.get_or_insert_default().extend_from_slice(items);
        }
    }
}

impl<T> Deref for ThinVec<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }
}

impl<T> DerefMut for ThinVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.0 {
            Some(v) => v.as_mut_slice(),
            None => &mut [],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pointer_and_no_heap_while_empty() {
        assert_eq!(std::mem::size_of::<ThinVec<u8>>(), std::mem::size_of::<usize>());
        let mut v: ThinVec<(u32, u32)> = ThinVec::new();
        assert!(v.is_empty() && v.0.is_none());
        v.push((1, 2));
        v.push((3, 4));
        v.push((5, 6));
        assert_eq!(v.swap_remove(0), (1, 2));
        assert_eq!(&v[..], &[(5, 6), (3, 4)]);
        v.iter_mut().for_each(|e| e.1 += 1);
        assert_eq!(v.last(), Some(&(3, 5)));
        assert_eq!(v.swap_remove(1), (3, 5));
        assert_eq!(v.swap_remove(0), (5, 7));
        assert!(v.0.is_none(), "emptied by swap_remove: freed");
    }

    #[test]
    fn bytes_extend_take_and_clear() {
        let mut b: ThinVec<u8> = ThinVec::default();
        b.extend_from_slice(&[]);
        assert!(b.0.is_none(), "an empty slice allocates nothing");
        b.extend_from_slice(b"ab");
        b.extend_from_slice(b"c");
        assert_eq!(&b[..], b"abc");
        assert_eq!(b.take(), b"abc".to_vec());
        assert!(b.0.is_none());
        b.extend_from_slice(b"x");
        b.clear();
        assert!(b.0.is_none() && b.is_empty());
    }
}
