//! A persistent vector indexed by `u32`: a radix-32 tree with path copying.
//!
//! Leaves hold up to 32 values; a branch holds up to 32 children, each
//! covering `32^level` indices. Up to 32 values the root is a leaf, and a
//! lookup is a bounds test and one index. The tree grows a level when it is
//! full; it only grows (push) or changes a value in place (set).

use std::sync::Arc;

/// Bits of the index consumed per level.
const BITS: u32 = 5;
/// Values (or children) per node.
const WIDTH: usize = 1 << BITS;
/// The mask of one level's bits.
const MASK: u32 = (1 << BITS) - 1;

/// A persistent vector. Cloning it is `O(1)`; `push` and `set` copy
/// `O(log32 n)` nodes of at most 32 entries.
pub(crate) struct PVec<T> {
    len: u32,
    /// The shift of the root's level: 0 when the root is a leaf.
    shift: u32,
    root: Arc<Node<T>>,
}

#[derive(Clone)]
enum Node<T> {
    Leaf(Vec<T>),
    Branch(Vec<Arc<Node<T>>>),
}

impl<T> Clone for PVec<T> {
    fn clone(&self) -> Self {
        Self {
            len: self.len,
            shift: self.shift,
            root: Arc::clone(&self.root),
        }
    }
}

impl<T> Default for PVec<T> {
    fn default() -> Self {
        Self {
            len: 0,
            shift: 0,
            root: Arc::new(Node::Leaf(Vec::new())),
        }
    }
}

impl<T> PVec<T> {
    /// The number of values.
    pub(crate) fn len(&self) -> u32 {
        self.len
    }

    /// The value at `index`.
    #[inline]
    pub(crate) fn get(&self, index: u32) -> Option<&T> {
        if index >= self.len {
            return None;
        }
        let mut node = &*self.root;
        let mut shift = self.shift;
        loop {
            match node {
                Node::Leaf(values) => return values.get((index & MASK) as usize),
                Node::Branch(children) => {
                    node = children.get(((index >> shift) & MASK) as usize)?;
                    // A branch's shift is at least `BITS`.
                    shift = shift.wrapping_sub(BITS);
                }
            }
        }
    }
}

impl<T: Clone> PVec<T> {
    /// Appends `value` at index `len()`.
    ///
    /// # Panics
    ///
    /// If the vector already holds `u32::MAX` values.
    pub(crate) fn push(&mut self, value: T) {
        let index = self.len;
        let new_len = index.checked_add(1).expect("fewer than 2^32 values");
        if u64::from(index) == 1u64 << (self.shift + BITS) {
            // Full at this height: the root becomes the first child of a
            // new root.
            let old = Arc::clone(&self.root);
            self.root = Arc::new(Node::Branch(vec![old]));
            self.shift += BITS;
        }
        push_at(Arc::make_mut(&mut self.root), self.shift, index, value);
        self.len = new_len;
    }

    /// Replaces the value at `index`; returns `false` (and changes nothing)
    /// if `index` is out of bounds.
    pub(crate) fn set(&mut self, index: u32, value: T) -> bool {
        if index >= self.len {
            return false;
        }
        let mut node = Arc::make_mut(&mut self.root);
        let mut shift = self.shift;
        loop {
            match node {
                Node::Leaf(values) => {
                    return match values.get_mut((index & MASK) as usize) {
                        Some(slot) => {
                            *slot = value;
                            true
                        }
                        None => false,
                    };
                }
                Node::Branch(children) => {
                    let Some(child) = children.get_mut(((index >> shift) & MASK) as usize) else {
                        return false;
                    };
                    node = Arc::make_mut(child);
                    shift = shift.wrapping_sub(BITS);
                }
            }
        }
    }
}

/// Appends `value` at `index`, the next index, under `node` at `shift`.
fn push_at<T: Clone>(node: &mut Node<T>, shift: u32, index: u32, value: T) {
    match node {
        Node::Leaf(values) => {
            debug_assert_eq!(values.len(), (index & MASK) as usize);
            values.push(value);
        }
        Node::Branch(children) => {
            let at = ((index >> shift) & MASK) as usize;
            debug_assert!(at <= children.len());
            if at == children.len() {
                children.push(Arc::new(if shift == BITS {
                    Node::Leaf(Vec::with_capacity(WIDTH))
                } else {
                    Node::Branch(Vec::new())
                }));
            }
            push_at(Arc::make_mut(&mut children[at]), shift - BITS, index, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_get_set_across_levels() {
        let n: u32 = if cfg!(miri) { 1_100 } else { 40_000 };
        let mut v = PVec::default();
        assert_eq!(v.get(0), None);
        let mut versions = Vec::new();
        for i in 0..n {
            v.push(i);
            if i % 997 == 0 || i == 32 || i == 1024 {
                versions.push(v.clone());
            }
        }
        assert_eq!(v.len(), n);
        assert!((0..n).all(|i| v.get(i) == Some(&i)));
        assert_eq!(v.get(n), None);
        assert!(v.set(5, 50));
        assert!(v.set(n - 1, 7));
        assert!(!v.set(n, 1));
        assert_eq!(v.get(5), Some(&50));
        assert_eq!(v.get(n - 1), Some(&7));
        for old in &versions {
            assert!((0..old.len()).all(|i| old.get(i) == Some(&i)));
            assert_eq!(old.get(old.len()), None);
        }
    }
}
