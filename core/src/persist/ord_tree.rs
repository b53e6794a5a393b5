//! A persistent ordered map for many small entries: a B+ tree with path
//! copying.
//!
//! Made for the index's literal map (one entry per literal pattern, 100 000
//! and more), where what an update costs is the reference counts its path
//! copy touches and the cache lines it reads. A [`HashTrie`](super::HashTrie)
//! of that size has tens of thousands of nodes, each with its count on a
//! line of its own, and since keys are hashed, successive updates land all
//! over it: each copies about 65 child slots, one cold count each (and as
//! many decrements when the old version goes). Here:
//!
//! - entries sit inline in wide leaves (up to `LEAF` of them, in key
//!   order), so copying a leaf copies plain data (no count, unless `K` or
//!   `V` holds one); only branches hold counts, one per child, and there
//!   are few of them (with the default sizes, 16 entries a leaf and 8
//!   children a branch, about `n / 12` leaves and `n / 70` branches: a
//!   path copy touches about 40 counts at 100 000 entries, where a
//!   `HashTrie` touches 65, and all of them on lines the previous update
//!   touched when keys come in sequence). Smaller nodes copy less and
//!   larger ones make fewer levels; 16 and 8 built 100 000 literal
//!   subscriptions fastest among 16/8, 16/16, 32/8, 32/16 and 64/16 (in
//!   `core/examples/subscribe_scale.rs`), though by under 10 %;
//! - keys are kept in their own order, not hashed, so keys made in
//!   sequence (`sub.t100`, `sub.t101`, … and patterns named after ids in
//!   general) land in one leaf, one after the other, and an update's path
//!   is the previous update's, still in cache. Keys in no order cost what
//!   a hashed map's do: one path of cold nodes.
//!
//! A branch holds, for each child, a lower bound of the keys below it; a
//! lookup takes the last child whose bound is at most the key. A leaf or
//! branch that falls under a quarter of its size is merged with a
//! neighbour (and split again if the two are too many), and a root with one
//! child gives way to it, so the tree stays `O(log n)` deep whatever was
//! removed.
//!
//! Nodes are `Arc<[_]>` slices, rebuilt (one allocation) when they change.

use std::{borrow::Borrow, iter, mem, sync::Arc};

use smallvec::SmallVec;

/// A persistent map from `K` to `V`, in key order. Cloning it is `O(1)`; an
/// update copies one leaf (at most `LEAF` entries) and `O(log n)` branches
/// of at most `BRANCH` children.
pub(crate) struct OrdTree<K, V, const LEAF: usize = 16, const BRANCH: usize = 8> {
    root: Option<Node<K, V>>,
    len: usize,
}

enum Node<K, V> {
    /// Entries by key.
    Leaf(Arc<[(K, V)]>),
    /// Children by key, never fewer than two (but in a root on its way
    /// out).
    Branch(Arc<[Child<K, V>]>),
}

struct Child<K, V> {
    /// At most every key below `node`, and more than every key below the
    /// previous child. (A lookup never reads the first child's, but a merge
    /// of two branches makes it a later one.)
    min: K,
    node: Node<K, V>,
}

impl<K, V> Clone for Node<K, V> {
    fn clone(&self) -> Self {
        match self {
            Node::Leaf(entries) => Node::Leaf(Arc::clone(entries)),
            Node::Branch(children) => Node::Branch(Arc::clone(children)),
        }
    }
}

impl<K: Clone, V> Clone for Child<K, V> {
    fn clone(&self) -> Self {
        Self {
            min: self.min.clone(),
            node: self.node.clone(),
        }
    }
}

impl<K, V> Node<K, V> {
    fn len(&self) -> usize {
        match self {
            Node::Leaf(entries) => entries.len(),
            Node::Branch(children) => children.len(),
        }
    }
}

impl<K: Clone, V> Node<K, V> {
    /// The smallest key below this node (`None` for an empty leaf).
    fn first_key(&self) -> Option<K> {
        match self {
            Node::Leaf(entries) => entries.first().map(|e| e.0.clone()),
            Node::Branch(children) => children.first().map(|c| c.min.clone()),
        }
    }
}

/// The child of `children` whose keys include `key`.
#[inline]
fn child_index<K: Borrow<Q>, V, Q: Ord + ?Sized>(children: &[Child<K, V>], key: &Q) -> usize {
    children
        .partition_point(|c| c.min.borrow() <= key)
        .saturating_sub(1)
}

/// Where `key` is in `entries` (`Ok`), or would go (`Err`).
#[inline]
fn search<K: Borrow<Q>, V, Q: Ord + ?Sized>(entries: &[(K, V)], key: &Q) -> Result<usize, usize> {
    entries.binary_search_by(|e| e.0.borrow().cmp(key))
}

/// `slice`'s items, to change in place: copied first if a clone shares
/// them.
fn unique<U: Clone>(slice: &mut Arc<[U]>) -> &mut [U] {
    if Arc::get_mut(slice).is_none() {
        *slice = slice.iter().cloned().collect();
    }
    Arc::get_mut(slice).unwrap_or(&mut [])
}

/// A copy of `slice` with `value` at `at`.
fn inserted<U: Clone>(slice: &[U], at: usize, value: U) -> Arc<[U]> {
    slice[..at]
        .iter()
        .cloned()
        .chain(iter::once(value))
        .chain(slice[at..].iter().cloned())
        .collect()
}

/// A copy of `slice` without the item at `at`.
fn removed<U: Clone>(slice: &[U], at: usize) -> Arc<[U]> {
    slice[..at]
        .iter()
        .chain(&slice[at + 1..])
        .cloned()
        .collect()
}

/// The least number of items a non-root node keeps before it is merged.
const fn min_len(max: usize) -> usize {
    if max / 4 > 2 { max / 4 } else { 2 }
}

/// What an insert did to a node.
enum Inserted<K, V> {
    /// The key was there: `merge` ran, and returned this.
    Merged(Option<V>),
    Added,
    /// Added, and the node split: this is its new right sibling.
    Split(Child<K, V>),
}

/// A node of `items` split in two halves: the left half, and the right one
/// as a child with its bound.
fn halves<U: Clone, K, V>(
    items: &[U],
    wrap: impl Fn(Arc<[U]>) -> Node<K, V>,
    bound: impl Fn(&U) -> K,
) -> (Node<K, V>, Child<K, V>) {
    let mid = items.len() / 2;
    let right: Arc<[U]> = items[mid..].iter().cloned().collect();
    let left: Arc<[U]> = items[..mid].iter().cloned().collect();
    let min = bound(&right[0]);
    (
        wrap(left),
        Child {
            min,
            node: wrap(right),
        },
    )
}

impl<K: Ord + Clone, V: Clone> Node<K, V> {
    /// Adds `key` with `value`, or if it is there, calls `merge` with its
    /// value and `value`.
    fn insert(
        &mut self,
        key: K,
        value: V,
        merge: impl FnOnce(&mut V, V) -> Option<V>,
        limits: (usize, usize),
    ) -> Inserted<K, V> {
        match self {
            Node::Leaf(entries) => {
                let at = match search(entries, &key) {
                    Ok(at) => {
                        let slot = &mut unique(entries)[at];
                        return Inserted::Merged(merge(&mut slot.1, value));
                    }
                    Err(at) => at,
                };
                let grown = inserted(entries, at, (key, value));
                if grown.len() <= limits.0 {
                    *entries = grown;
                    return Inserted::Added;
                }
                let (left, right) = halves(&grown, Node::Leaf, |e| e.0.clone());
                *self = left;
                Inserted::Split(right)
            }
            Node::Branch(children) => {
                let at = child_index(children, &key);
                let child = &mut unique(children)[at];
                // Only in the first child can `key` be under the bound.
                if key < child.min {
                    child.min = key.clone();
                }
                let done = child.node.insert(key, value, merge, limits);
                let Inserted::Split(right) = done else {
                    return done;
                };
                let grown = inserted(children, at + 1, right);
                if grown.len() <= limits.1 {
                    *children = grown;
                    return Inserted::Added;
                }
                let (left, right) = halves(&grown, Node::Branch, |c| c.min.clone());
                *self = left;
                Inserted::Split(right)
            }
        }
    }

    /// Removes `key`, which the caller has found under this node.
    fn remove<Q>(&mut self, key: &Q, limits: (usize, usize)) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self {
            Node::Leaf(entries) => {
                let at = search(entries, key).ok()?;
                let value = entries[at].1.clone();
                *entries = removed(entries, at);
                Some(value)
            }
            Node::Branch(children) => {
                let at = child_index(children, key);
                let value = unique(children)[at].node.remove(key, limits)?;
                let least = match children[at].node {
                    Node::Leaf(_) => min_len(limits.0),
                    Node::Branch(_) => min_len(limits.1),
                };
                if children[at].node.len() < least && children.len() > 1 {
                    // Merged with a neighbour, the right one if any.
                    let first = if at + 1 < children.len() { at } else { at - 1 };
                    let pair = merge(&children[first], &children[first + 1], limits);
                    *children = children[..first]
                        .iter()
                        .cloned()
                        .chain(pair)
                        .chain(children[first + 2..].iter().cloned())
                        .collect();
                }
                Some(value)
            }
        }
    }

    fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self {
            Node::Leaf(entries) => {
                let at = search(entries, key).ok()?;
                Some(&mut unique(entries)[at].1)
            }
            Node::Branch(children) => {
                let at = child_index(children, key);
                unique(children)[at].node.get_mut(key)
            }
        }
    }
}

/// Two neighbouring children (at one level) as one, or as two again if one
/// would be too many.
fn merge<K: Clone, V: Clone>(
    a: &Child<K, V>,
    b: &Child<K, V>,
    limits: (usize, usize),
) -> SmallVec<[Child<K, V>; 2]> {
    let (one, max) = match (&a.node, &b.node) {
        (Node::Leaf(x), Node::Leaf(y)) => {
            let all: Vec<(K, V)> = x.iter().chain(y.iter()).cloned().collect();
            if all.len() > limits.0 {
                let (left, right) = halves(&all, Node::Leaf, |e| e.0.clone());
                (left, Some(right))
            } else {
                (Node::Leaf(all.into()), None)
            }
        }
        (Node::Branch(x), Node::Branch(y)) => {
            let all: Vec<Child<K, V>> = x
                .iter()
                .cloned()
                // `b`'s first child becomes a later one: its bound is read
                // from now on, and `b`'s own is the one known to hold.
                .chain(y.iter().enumerate().map(|(i, c)| match i {
                    0 => Child {
                        min: b.min.clone(),
                        node: c.node.clone(),
                    },
                    _ => c.clone(),
                }))
                .collect();
            if all.len() > limits.1 {
                let (left, right) = halves(&all, Node::Branch, |c| c.min.clone());
                (left, Some(right))
            } else {
                (Node::Branch(all.into()), None)
            }
        }
        // Siblings are always at one level; kept as they are otherwise.
        _ => return smallvec::smallvec![a.clone(), b.clone()],
    };
    let mut pair = SmallVec::new();
    pair.push(Child {
        min: a.min.clone(),
        node: one,
    });
    pair.extend(max);
    pair
}

impl<K, V, const LEAF: usize, const BRANCH: usize> Clone for OrdTree<K, V, LEAF, BRANCH> {
    fn clone(&self) -> Self {
        Self {
            root: self.root.clone(),
            len: self.len,
        }
    }
}

impl<K, V, const LEAF: usize, const BRANCH: usize> Default for OrdTree<K, V, LEAF, BRANCH> {
    fn default() -> Self {
        Self { root: None, len: 0 }
    }
}

impl<K, V, const LEAF: usize, const BRANCH: usize> OrdTree<K, V, LEAF, BRANCH> {
    /// The number of entries.
    #[allow(dead_code, reason = "map API; the index keeps its own count")]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the map has no entry.
    #[allow(dead_code, reason = "map API; the index's tests use it")]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries, in key order.
    #[allow(dead_code, reason = "map API; the index needs only lookups")]
    pub(crate) fn iter(&self) -> Iter<'_, K, V> {
        let mut iter = Iter {
            stack: SmallVec::new(),
            leaf: [].iter(),
        };
        match &self.root {
            Some(Node::Leaf(entries)) => iter.leaf = entries.iter(),
            Some(Node::Branch(children)) => iter.stack.push(children.iter()),
            None => {}
        }
        iter
    }

    /// The value of `key`.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let mut node = self.root.as_ref()?;
        loop {
            match node {
                Node::Leaf(entries) => return Some(&entries[search(entries, key).ok()?].1),
                Node::Branch(children) => {
                    node = &children.get(child_index(children, key))?.node;
                }
            }
        }
    }

    /// Whether the map holds `key`.
    pub(crate) fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.get(key).is_some()
    }
}

impl<K: Ord + Clone, V: Clone, const LEAF: usize, const BRANCH: usize> OrdTree<K, V, LEAF, BRANCH> {
    /// The node sizes, at least 2 entries a leaf and 3 children a branch
    /// (so that a split or a merge never leaves a branch of one child).
    const LIMITS: (usize, usize) = (
        if LEAF > 2 { LEAF } else { 2 },
        if BRANCH > 3 { BRANCH } else { 3 },
    );

    /// Sets `key` to `value`, returning the value it replaced.
    #[allow(dead_code, reason = "map API; the index uses `upsert`")]
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.upsert(key, value, |slot, value| Some(mem::replace(slot, value)))
    }

    /// Adds `key` with `value`, or if the map holds `key`, calls `merge`
    /// with its value (to change in place) and `value`, and returns what
    /// `merge` returns. One walk down the tree either way.
    pub(crate) fn upsert(
        &mut self,
        key: K,
        value: V,
        merge: impl FnOnce(&mut V, V) -> Option<V>,
    ) -> Option<V> {
        let Some(root) = &mut self.root else {
            self.root = Some(Node::Leaf(Arc::new([(key, value)])));
            self.len = 1;
            return None;
        };
        match root.insert(key, value, merge, Self::LIMITS) {
            Inserted::Merged(old) => return old,
            Inserted::Added => {}
            Inserted::Split(right) => {
                // The tree grows a level.
                let left = mem::replace(root, Node::Leaf(Arc::new([])));
                if let Some(min) = left.first_key() {
                    *root = Node::Branch(Arc::new([Child { min, node: left }, right]));
                }
            }
        }
        self.len += 1;
        None
    }

    /// Removes `key`, returning its value. Copies nothing if `key` is
    /// absent.
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        if !self.contains_key(key) {
            return None;
        }
        let value = self.root.as_mut()?.remove(key, Self::LIMITS)?;
        // A root branch with one child gives way to it; an empty leaf goes.
        loop {
            match &self.root {
                Some(Node::Branch(children)) if children.len() == 1 => {
                    self.root = Some(children[0].node.clone());
                }
                Some(Node::Leaf(entries)) if entries.is_empty() => self.root = None,
                _ => break,
            }
        }
        self.len -= 1;
        Some(value)
    }

    /// The value of `key`, to change in place (copying its path). Copies
    /// nothing if `key` is absent.
    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        if !self.contains_key(key) {
            return None;
        }
        self.root.as_mut()?.get_mut(key)
    }
}

/// The entries of an [`OrdTree`], in key order.
pub(crate) struct Iter<'a, K, V> {
    /// The children left at each branch of the path being walked.
    stack: SmallVec<[std::slice::Iter<'a, Child<K, V>>; 8]>,
    /// The entries left in the current leaf.
    leaf: std::slice::Iter<'a, (K, V)>,
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((k, v)) = self.leaf.next() {
                return Some((k, v));
            }
            match self.stack.last_mut()?.next() {
                None => {
                    self.stack.pop();
                }
                Some(Child {
                    node: Node::Leaf(entries),
                    ..
                }) => self.leaf = entries.iter(),
                Some(Child {
                    node: Node::Branch(children),
                    ..
                }) => self.stack.push(children.iter()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// The tree's shape: every leaf at one depth, entries in key order and
    /// within the bounds of every branch above them, no empty leaf and no
    /// branch of one child below the root. Returns the depth.
    fn check_shape<K: Ord + Clone, V>(
        node: &Node<K, V>,
        low: Option<&K>,
        high: Option<&K>,
    ) -> usize {
        match node {
            Node::Leaf(entries) => {
                assert!(!entries.is_empty());
                assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
                for e in entries.iter() {
                    assert!(low.is_none_or(|low| e.0 >= *low));
                    assert!(high.is_none_or(|high| e.0 < *high));
                }
                0
            }
            Node::Branch(children) => {
                assert!(children.len() >= 2);
                assert!(children.windows(2).all(|w| w[0].min < w[1].min));
                assert!(high.is_none_or(|high| children.iter().all(|c| c.min < *high)));
                let depths: Vec<usize> = children
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let low = low.map_or(&c.min, |low| low.max(&c.min));
                        let high = children.get(i + 1).map(|n| &n.min).or(high);
                        check_shape(&c.node, Some(low), high)
                    })
                    .collect();
                assert!(depths.windows(2).all(|w| w[0] == w[1]));
                depths[0] + 1
            }
        }
    }

    fn check<const L: usize, const B: usize>(
        tree: &OrdTree<u64, u32, L, B>,
        model: &BTreeMap<u64, u32>,
    ) {
        assert_eq!(tree.len(), model.len());
        assert_eq!(tree.is_empty(), model.is_empty());
        let all: Vec<(u64, u32)> = tree.iter().map(|(k, v)| (*k, *v)).collect();
        let want: Vec<(u64, u32)> = model.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(all, want);
        for (k, v) in model {
            assert_eq!(tree.get(k), Some(v));
        }
        match &tree.root {
            None => assert!(model.is_empty()),
            Some(root) => {
                check_shape(root, None, None);
            }
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "no unsafe code to check; slow under Miri")]
    fn insert_get_remove_across_levels() {
        // Three levels or more, keys in order and scattered.
        fn run<const L: usize, const B: usize>(n: u64) {
            let mut tree: OrdTree<u64, u32, L, B> = OrdTree::default();
            let mut model = BTreeMap::new();
            let mut versions = Vec::new();
            // In order, then scattered (a multiplicative permutation).
            let keys = (0..n).chain((0..n).map(|i| n + (i * 7_919) % n));
            for (i, k) in keys.enumerate() {
                assert_eq!(tree.insert(k, k as u32), None);
                model.insert(k, k as u32);
                if i % 997 == 0 {
                    versions.push((tree.clone(), model.clone()));
                }
            }
            assert_eq!(tree.insert(7, 70), Some(7));
            model.insert(7, 70);
            check(&tree, &model);
            for k in (0..2 * n).step_by(3) {
                assert_eq!(tree.remove(&k), model.remove(&k));
            }
            assert_eq!(tree.remove(&3), None);
            assert_eq!(tree.remove(&(2 * n)), None);
            check(&tree, &model);
            *tree.get_mut(&1).unwrap() = 11;
            model.insert(1, 11);
            assert!(tree.get_mut(&3).is_none());
            check(&tree, &model);
            for k in (0..2 * n).rev() {
                assert_eq!(tree.remove(&k), model.remove(&k));
                if k % 1_009 == 0 {
                    check(&tree, &model);
                }
            }
            check(&tree, &model);
            assert!(tree.root.is_none());
            for (old, model) in &versions {
                check(old, model);
            }
        }
        if cfg!(miri) {
            run::<4, 3>(60);
        } else {
            run::<32, 16>(10_000);
            run::<4, 3>(2_000);
        }
    }

    #[test]
    fn upsert_adds_or_merges() {
        let mut tree: OrdTree<u64, u32, 4, 3> = OrdTree::default();
        for k in 0..20 {
            assert_eq!(tree.upsert(k, 1, |_, _| unreachable!("new key")), None);
        }
        for k in (0..20).step_by(2) {
            let merged = tree.upsert(k, 5, |old, new| {
                *old += new;
                Some(*old)
            });
            assert_eq!(merged, Some(6));
        }
        assert_eq!(tree.len(), 20);
        assert!((0..20).all(|k| tree.get(&k) == Some(&if k % 2 == 0 { 6 } else { 1 })));
    }

    #[test]
    fn string_keys_borrow() {
        let mut tree: OrdTree<Arc<str>, u32> = OrdTree::default();
        tree.insert(Arc::from("a.b"), 1);
        assert_eq!(tree.get("a.b"), Some(&1));
        assert_eq!(tree.get("a.c"), None);
        assert_eq!(tree.remove("a.b"), Some(1));
        assert!(tree.is_empty());
    }

    proptest! {
        #![proptest_config(crate::test_strategies::config())]

        /// With small nodes, the tree grows and shrinks by several levels;
        /// it agrees with a `BTreeMap`, and keeps its shape, after every
        /// step, and every earlier clone keeps its contents.
        #[test]
        #[cfg_attr(miri, ignore = "no unsafe code to check; slow under Miri")]
        fn matches_btree_map(
            ops in prop::collection::vec(
                (0..3u8, 0..96u64, any::<u32>()),
                0..if cfg!(miri) { 40 } else { 300 },
            ),
        ) {
            let mut tree: OrdTree<u64, u32, 4, 3> = OrdTree::default();
            let mut model = BTreeMap::new();
            let mut versions = Vec::new();
            for (op, key, value) in ops {
                match op {
                    0 | 1 => prop_assert_eq!(tree.insert(key, value), model.insert(key, value)),
                    _ => {
                        // A key the model holds, when there is one, so that
                        // removes shrink the tree often.
                        let key = model
                            .keys()
                            .nth(value as usize % model.len().max(1))
                            .copied()
                            .unwrap_or(key);
                        prop_assert_eq!(tree.remove(&key), model.remove(&key));
                    }
                }
                if let Some(v) = tree.get_mut(&(key ^ 1)) {
                    *v = v.wrapping_add(1);
                    if let Some(m) = model.get_mut(&(key ^ 1)) {
                        *m = m.wrapping_add(1);
                    }
                }
                check(&tree, &model);
                versions.push((tree.clone(), model.clone()));
            }
            for (tree, model) in &versions {
                check(tree, model);
            }
        }
    }
}
