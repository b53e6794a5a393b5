//! A persistent map keyed by `u64` ids: a sparse radix-8 tree with path
//! copying.
//!
//! Made for keys that are handed out in increasing order (subscription
//! ids): neighbouring ids share a leaf, so the entries an insert of the
//! newest id copies are the newest ones too, on cache lines that are still
//! warm, where a hash-keyed map scatters neighbours over the whole map and
//! copies entries from all over it (one cold reference count each).
//!
//! Leaves hold 8 optional values; a branch holds 8 optional children,
//! each covering `8^level` ids; each node is one `Arc<[_; 8]>`, held by
//! its parent (the root, by the map). The tree grows a level when an id
//! beyond its reach arrives. An update copies the nodes on the id's path
//! (`O(log8 max id)` nodes of 8 slots, at most 22), changing them in place
//! where no clone shares them. A remove that empties a node removes it from its
//! parent, up to the root, so a map holds only nodes with a live entry
//! below them: memory follows the live entries, whatever ids came and went.
//!
//! Why 8: what a path copy costs is mostly the reference counts in the
//! slots it copies (one increment now, one decrement when the old version
//! goes). With ids in sequence, each node on the newest path is half full
//! on average, so an insert at 100 000 ids copies about 4 slots on each of
//! 6 levels with 8 slots, against about 16 on each of 4 levels with 32:
//! `core/examples/subscribe_scale.rs -- --literal --build-only 100000`
//! spent about 12 % less CPU time building (and 10 % less dropping) than
//! with 32 slots, 16 slots lying between. A lookup walks two levels more.
//!
//! Iteration is in id order.

use std::sync::Arc;

use smallvec::SmallVec;

/// Bits of the id consumed per level.
const BITS: u32 = 3;
/// Slots per node.
const WIDTH: usize = 1 << BITS;
/// The mask of one level's bits.
const MASK: u64 = (WIDTH as u64) - 1;

/// A persistent map from `u64` ids to `V`. Cloning it is `O(1)`.
pub(crate) struct IdMap<V> {
    /// `None` while the map is empty.
    root: Option<Node<V>>,
    /// The shift of the root's level: 0 when the root is a leaf.
    shift: u32,
    len: usize,
}

enum Node<V> {
    Leaf(Arc<[Option<V>; WIDTH]>),
    Branch(Arc<[Option<Node<V>>; WIDTH]>),
}

impl<V> Clone for Node<V> {
    fn clone(&self) -> Self {
        match self {
            Node::Leaf(values) => Node::Leaf(Arc::clone(values)),
            Node::Branch(children) => Node::Branch(Arc::clone(children)),
        }
    }
}

impl<V> Clone for IdMap<V> {
    fn clone(&self) -> Self {
        Self {
            root: self.root.clone(),
            shift: self.shift,
            len: self.len,
        }
    }
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        Self {
            root: None,
            shift: 0,
            len: 0,
        }
    }
}

/// The slot of `id` in a node at `shift`.
#[inline(always)]
fn slot(id: u64, shift: u32) -> usize {
    ((id >> shift) & MASK) as usize
}

/// Whether a tree whose root is at `shift` reaches `id`.
#[inline(always)]
fn reaches(shift: u32, id: u64) -> bool {
    // `shift + BITS` is at most 66 (a 22-level tree covers every `u64`).
    id.checked_shr(shift + BITS).unwrap_or(0) == 0
}

impl<V> Node<V> {
    /// A node with no entry, at `shift`.
    fn empty(shift: u32) -> Self {
        if shift == 0 {
            Node::Leaf(Arc::new(std::array::from_fn(|_| None)))
        } else {
            Node::Branch(Arc::new(std::array::from_fn(|_| None)))
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Node::Leaf(values) => values.iter().all(Option::is_none),
            Node::Branch(children) => children.iter().all(Option::is_none),
        }
    }
}

impl<V> IdMap<V> {
    /// The number of entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the map has no entry.
    #[allow(dead_code, reason = "map API; the registry needs only len")]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of `id`.
    pub(crate) fn get(&self, id: u64) -> Option<&V> {
        if !reaches(self.shift, id) {
            return None;
        }
        let mut node = self.root.as_ref()?;
        let mut shift = self.shift;
        loop {
            match node {
                Node::Leaf(values) => return values[slot(id, 0)].as_ref(),
                Node::Branch(children) => {
                    node = children[slot(id, shift)].as_ref()?;
                    // A branch's shift is at least `BITS`.
                    shift = shift.wrapping_sub(BITS);
                }
            }
        }
    }

    /// Whether the map holds `id`.
    pub(crate) fn contains_key(&self, id: u64) -> bool {
        self.get(id).is_some()
    }

    /// The entries, in increasing id order.
    pub(crate) fn iter(&self) -> Iter<'_, V> {
        let mut stack = SmallVec::new();
        if let Some(root) = &self.root {
            stack.push(Level::of(root));
        }
        Iter { stack }
    }
}

impl<V: Clone> IdMap<V> {
    /// Sets `id` to `value`, returning the value it replaced.
    pub(crate) fn insert(&mut self, id: u64, value: V) -> Option<V> {
        if self.root.is_none() {
            // The lowest tree that reaches `id`.
            self.shift = 0;
            while !reaches(self.shift, id) {
                self.shift += BITS;
            }
        }
        while self.root.is_some() && !reaches(self.shift, id) {
            // The root becomes the first child of a new root.
            let old = self.root.take();
            let mut children: [Option<Node<V>>; WIDTH] = std::array::from_fn(|_| None);
            children[0] = old;
            self.root = Some(Node::Branch(Arc::new(children)));
            self.shift += BITS;
        }
        let mut shift = self.shift;
        let mut node = self.root.get_or_insert_with(|| Node::empty(shift));
        let old = loop {
            match node {
                Node::Leaf(values) => {
                    break Arc::make_mut(values)[slot(id, 0)].replace(value);
                }
                Node::Branch(children) => {
                    let below = shift.wrapping_sub(BITS);
                    node = Arc::make_mut(children)[slot(id, shift)]
                        .get_or_insert_with(|| Node::empty(below));
                    shift = below;
                }
            }
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes `id`, returning its value. Copies nothing if `id` is absent;
    /// a node left empty leaves its parent (the root, the map).
    pub(crate) fn remove(&mut self, id: u64) -> Option<V> {
        if !self.contains_key(id) {
            return None;
        }
        let root = self.root.as_mut()?;
        let value = remove_at(root, self.shift, id)?;
        if root.is_empty() {
            self.root = None;
            self.shift = 0;
        }
        self.len -= 1;
        Some(value)
    }
}

/// Removes `id`, which the caller has found, under `node` at `shift`,
/// dropping children left empty. Recursion depth is at most 22.
fn remove_at<V: Clone>(node: &mut Node<V>, shift: u32, id: u64) -> Option<V> {
    match node {
        Node::Leaf(values) => Arc::make_mut(values)[slot(id, 0)].take(),
        Node::Branch(children) => {
            let child_slot = &mut Arc::make_mut(children)[slot(id, shift)];
            let child = child_slot.as_mut()?;
            let value = remove_at(child, shift.wrapping_sub(BITS), id);
            if child.is_empty() {
                *child_slot = None;
            }
            value
        }
    }
}

/// The slots left in one node of the path being walked.
enum Level<'a, V> {
    Leaf(std::slice::Iter<'a, Option<V>>),
    Branch(std::slice::Iter<'a, Option<Node<V>>>),
}

impl<'a, V> Level<'a, V> {
    fn of(node: &'a Node<V>) -> Self {
        match node {
            Node::Leaf(values) => Level::Leaf(values.iter()),
            Node::Branch(children) => Level::Branch(children.iter()),
        }
    }
}

/// The values of an [`IdMap`], in increasing id order.
pub(crate) struct Iter<'a, V> {
    /// One level per node on the path: inline up to 12 (ids below 8^12).
    stack: SmallVec<[Level<'a, V>; 12]>,
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = &'a V;

    fn next(&mut self) -> Option<&'a V> {
        loop {
            let child = match self.stack.last_mut()? {
                Level::Leaf(values) => match values.next() {
                    Some(Some(value)) => return Some(value),
                    Some(None) => continue,
                    None => None,
                },
                Level::Branch(children) => match children.next() {
                    Some(Some(child)) => Some(child),
                    Some(None) => continue,
                    None => None,
                },
            };
            match child {
                Some(child) => self.stack.push(Level::of(child)),
                None => {
                    self.stack.pop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// Nodes in the tree, to check that empty ones are gone.
    fn nodes<V>(node: &Node<V>) -> usize {
        match node {
            Node::Leaf(_) => 1,
            Node::Branch(children) => 1 + children.iter().flatten().map(nodes).sum::<usize>(),
        }
    }

    fn check(map: &IdMap<u32>, model: &BTreeMap<u64, u32>) -> Result<(), TestCaseError> {
        prop_assert_eq!(map.len(), model.len());
        prop_assert_eq!(map.is_empty(), model.is_empty());
        let all: Vec<u32> = map.iter().copied().collect();
        let want: Vec<u32> = model.values().copied().collect();
        prop_assert_eq!(all, want);
        for (&id, v) in model {
            prop_assert_eq!(map.get(id), Some(v));
        }
        match &map.root {
            None => prop_assert!(model.is_empty()),
            Some(root) => {
                prop_assert!(!root.is_empty());
                // No empty node anywhere: every node has an entry below it.
                fn no_empty<V>(node: &Node<V>) -> bool {
                    !node.is_empty()
                        && match node {
                            Node::Leaf(_) => true,
                            Node::Branch(children) => children.iter().flatten().all(no_empty),
                        }
                }
                prop_assert!(no_empty(root));
                // At most one node per level per entry.
                let levels = (map.shift / BITS) as usize + 1;
                prop_assert!(nodes(root) <= model.len() * levels);
            }
        }
        Ok(())
    }

    #[test]
    fn sequential_ids_fill_and_empty() {
        // Under Miri (this module has no `unsafe`; Miri checks the `Arc`s it
        // copies) three levels are enough: ids past 64 need a third one.
        let n: u64 = if cfg!(miri) { 100 } else { 40_000 };
        let mut map = IdMap::default();
        let mut model = BTreeMap::new();
        let mut versions = Vec::new();
        for id in 1..=n {
            assert_eq!(map.insert(id, id as u32), None);
            model.insert(id, id as u32);
            if id % 997 == 0 || id == 8 || id == 64 || id == 1024 {
                versions.push((map.clone(), model.clone()));
            }
        }
        assert_eq!(map.insert(7, 70), Some(7));
        model.insert(7, 70);
        check(&map, &model).unwrap();
        assert_eq!(map.get(n + 1), None);
        assert_eq!(map.get(u64::MAX), None);
        assert_eq!(map.remove(n + 1), None);
        // Oldest first, as a program drops the subscriptions it made.
        for id in 1..=n {
            assert_eq!(map.remove(id), model.remove(&id));
            if id % 4_099 == 0 {
                check(&map, &model).unwrap();
            }
        }
        check(&map, &model).unwrap();
        assert!(map.root.is_none());
        for (old, model) in &versions {
            check(old, model).unwrap();
        }
    }

    #[test]
    fn extreme_ids() {
        let mut map = IdMap::default();
        let mut model = BTreeMap::new();
        for id in [u64::MAX, 0, 1 << 63, 31, 32, u64::MAX - 1, 1 << 40] {
            assert_eq!(map.insert(id, id as u32), None);
            model.insert(id, id as u32);
            check(&map, &model).unwrap();
        }
        for id in [0, u64::MAX, 31, 1 << 40] {
            assert_eq!(map.remove(id), model.remove(&id));
            check(&map, &model).unwrap();
        }
    }

    /// Ids near each other and far apart, so that operations share
    /// leaves, grow the tree and empty whole subtrees.
    fn id_strategy() -> impl Strategy<Value = u64> {
        prop_oneof![
            4 => 0..80u64,
            2 => 0..5_000u64,
            1 => any::<u64>(),
        ]
    }

    proptest! {
        #![proptest_config(crate::test_strategies::config())]

        /// The map agrees with a `BTreeMap` after every step, including
        /// removes that empty nodes, and every earlier clone keeps its
        /// contents.
        #[test]
        fn matches_btree_map(
            ops in prop::collection::vec(
                (any::<bool>(), id_strategy(), any::<u32>()),
                0..if cfg!(miri) { 16 } else { 200 },
            ),
        ) {
            let mut map: IdMap<u32> = IdMap::default();
            let mut model = BTreeMap::new();
            let mut versions = Vec::new();
            for (insert, id, value) in ops {
                if insert {
                    prop_assert_eq!(map.insert(id, value), model.insert(id, value));
                } else {
                    // Remove an id the model holds, when there is one, so
                    // that removes empty nodes often.
                    let id = model
                        .keys()
                        .nth(value as usize % model.len().max(1))
                        .copied()
                        .unwrap_or(id);
                    prop_assert_eq!(map.remove(id), model.remove(&id));
                }
                check(&map, &model)?;
                versions.push((map.clone(), model.clone()));
            }
            for (map, model) in &versions {
                check(map, model)?;
            }
        }
    }
}
