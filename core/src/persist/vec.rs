//! A persistent vector indexed by `u32`: a radix-32 tree with path copying.
//!
//! The first 32 values sit in one `Arc<[T]>` of their own, the head, so
//! that a lookup among them is what a `Vec`'s is: one bounds test and one
//! load (this is the publish path's route lookup, and a bus's kind topics
//! are its first ids). The rest sit in a tree: leaves hold up to 32 values;
//! a branch holds up to 32 children, each covering `32^level` indices; each
//! node is one `Arc<[_]>`, held by its parent (the root, by the tree). The
//! tree grows a level when it is full; the vector only grows (push) or
//! changes a value in place (set).

use std::{iter, sync::Arc};

/// Bits of the index consumed per level.
const BITS: u32 = 5;
/// The mask of one level's bits.
const MASK: u32 = (1 << BITS) - 1;

/// A persistent vector. Cloning it is `O(1)`; `push` and `set` copy
/// `O(log32 n)` nodes of at most 32 entries.
pub(crate) struct PVec<T> {
    /// Values `0..32` (fewer while the vector is shorter).
    head: Arc<[T]>,
    /// Values `32..`, at their index less 32.
    tail: Tree<T>,
}

/// A radix tree of values.
struct Tree<T> {
    root: Node<T>,
    len: u32,
    /// The shift of the root's level: 0 when the root is a leaf.
    shift: u32,
}

enum Node<T> {
    Leaf(Arc<[T]>),
    Branch(Arc<[Node<T>]>),
}

impl<T> Clone for Node<T> {
    fn clone(&self) -> Self {
        match self {
            Node::Leaf(values) => Node::Leaf(Arc::clone(values)),
            Node::Branch(children) => Node::Branch(Arc::clone(children)),
        }
    }
}

impl<T> Clone for PVec<T> {
    fn clone(&self) -> Self {
        Self {
            head: Arc::clone(&self.head),
            tail: self.tail.clone(),
        }
    }
}

impl<T> Default for PVec<T> {
    fn default() -> Self {
        Self {
            head: Arc::new([]),
            tail: Tree::default(),
        }
    }
}

impl<T> Clone for Tree<T> {
    fn clone(&self) -> Self {
        Self {
            root: self.root.clone(),
            len: self.len,
            shift: self.shift,
        }
    }
}

impl<T> Default for Tree<T> {
    fn default() -> Self {
        Self {
            root: Node::Leaf(Arc::new([])),
            len: 0,
            shift: 0,
        }
    }
}

/// `slice`'s items, to change in place: copied first if a clone shares
/// them.
fn unique<U: Clone>(slice: &mut Arc<[U]>) -> &mut [U] {
    if Arc::get_mut(slice).is_none() {
        *slice = slice.iter().cloned().collect();
    }
    Arc::get_mut(slice).unwrap_or(&mut [])
}

/// A copy of `slice` with `value` appended.
fn appended<U: Clone>(slice: &[U], value: U) -> Arc<[U]> {
    slice.iter().cloned().chain(iter::once(value)).collect()
}

/// The length of the head.
const HEAD: u32 = 32;

impl<T> PVec<T> {
    /// The number of values.
    pub(crate) fn len(&self) -> u32 {
        self.head.len() as u32 + self.tail.len
    }

    /// The value at `index`.
    #[inline]
    pub(crate) fn get(&self, index: u32) -> Option<&T> {
        match self.head.get(index as usize) {
            Some(value) => Some(value),
            None => self.tail.get(index.wrapping_sub(HEAD)),
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
        if self.head.len() < HEAD as usize {
            self.head = appended(&self.head, value);
        } else {
            self.tail.push(value);
        }
    }

    /// Replaces the value at `index`; returns `false` (and changes nothing)
    /// if `index` is out of bounds.
    pub(crate) fn set(&mut self, index: u32, value: T) -> bool {
        if (index as usize) < self.head.len() {
            match unique(&mut self.head).get_mut(index as usize) {
                Some(slot) => {
                    *slot = value;
                    true
                }
                None => false,
            }
        } else {
            self.tail.set(index.wrapping_sub(HEAD), value)
        }
    }
}

impl<T> Tree<T> {
    /// The value at `index`.
    #[inline(never)]
    fn get(&self, index: u32) -> Option<&T> {
        if index >= self.len {
            return None;
        }
        let mut node = &self.root;
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

impl<T: Clone> Tree<T> {
    fn push(&mut self, value: T) {
        let index = self.len;
        // With the head's 32, the vector's length stays a `u32`.
        let new_len = index
            .checked_add(1)
            .filter(|&len| len <= u32::MAX - HEAD)
            .expect("fewer than 2^32 values");
        if u64::from(index) == 1u64 << (self.shift + BITS) {
            // Full at this height: the root becomes the first child of a
            // new root.
            let old = self.root.clone();
            self.root = Node::Branch(Arc::new([old]));
            self.shift += BITS;
        }
        push_at(&mut self.root, self.shift, index, value);
        self.len = new_len;
    }

    fn set(&mut self, index: u32, value: T) -> bool {
        if index >= self.len {
            return false;
        }
        let mut node = &mut self.root;
        let mut shift = self.shift;
        loop {
            match node {
                Node::Leaf(values) => {
                    return match unique(values).get_mut((index & MASK) as usize) {
                        Some(slot) => {
                            *slot = value;
                            true
                        }
                        None => false,
                    };
                }
                Node::Branch(children) => {
                    let at = ((index >> shift) & MASK) as usize;
                    let Some(child) = unique(children).get_mut(at) else {
                        return false;
                    };
                    node = child;
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
            *values = appended(values, value);
        }
        Node::Branch(children) => {
            let at = ((index >> shift) & MASK) as usize;
            debug_assert!(at <= children.len());
            if at == children.len() {
                // The first index of a new subtree.
                let child = if shift == BITS {
                    Node::Leaf(Arc::new([value]))
                } else {
                    let mut child = Node::Branch(Arc::new([]));
                    push_at(&mut child, shift - BITS, index, value);
                    child
                };
                *children = appended(children, child);
            } else if let Some(child) = unique(children).get_mut(at) {
                push_at(child, shift - BITS, index, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "no unsafe code to check; slow under Miri")]
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
