//! A persistent hash map: a hash array mapped trie with path copying.
//!
//! Each node holds a 16-bit bitmap (in a `u32`) of the hash fragments it has slots for,
//! and one slot per set bit, in bit order: a slot's index is the number of
//! set bits below its own (Bagwell's HAMT). A slot is a leaf (a full hash,
//! its key and value), a collision (keys whose 64-bit hashes are equal) or
//! a child node for the next four bits. A leaf sits at the first level where
//! its fragment path is its own; an insert that meets a leaf with another
//! hash pushes it one level down, and a remove that leaves a child with one
//! leaf pulls the leaf back up, so the trie stays about `log16 n` deep.
//!
//! A node's slots are one `Arc<[Slot]>` (one allocation). Updates copy the
//! slots on the path they change, which a clone of the map shares until
//! then, and change them in place where no clone shares them; a clone of the
//! map is one reference count.

use std::{
    borrow::Borrow,
    hash::{BuildHasher, Hash},
    iter, mem,
    sync::Arc,
};

use smallvec::SmallVec;

/// Bits of the hash consumed per level: 16 slots a node. Narrower nodes make
/// the trie deeper (five levels for 100 000 entries) but an update copies
/// fewer slots (each a reference count or two), which is what an update
/// costs: about 65 slots at 100 000 entries, against 100 with 32-slot nodes.
const BITS: u32 = 4;
/// The mask of one level's bits.
const MASK: u32 = (1 << BITS) - 1;

/// A persistent map from `K` to `V`. Cloning it is `O(1)`; an update copies
/// `O(log16 n)` nodes of at most 16 slots.
pub(crate) struct HashTrie<K, V, S = ahash::RandomState> {
    root: Option<Node<K, V>>,
    len: usize,
    /// Kept by every clone: the map's hashes must not change.
    hasher: S,
}

struct Node<K, V> {
    /// Bit `f` is set when this node has a slot for hash fragment `f`.
    bitmap: u32,
    /// One slot per set bit of `bitmap`, in bit order.
    slots: Arc<[Slot<K, V>]>,
}

enum Slot<K, V> {
    /// One entry and its full hash.
    Leaf(u64, K, V),
    /// Entries whose full hashes are all this one (never fewer than two).
    Collision(u64, Vec<(K, V)>),
    /// The next level, for the hashes that share this slot's fragment.
    Node(Node<K, V>),
}

impl<K, V> Clone for Node<K, V> {
    fn clone(&self) -> Self {
        Self {
            bitmap: self.bitmap,
            slots: Arc::clone(&self.slots),
        }
    }
}

impl<K: Clone, V: Clone> Clone for Slot<K, V> {
    fn clone(&self) -> Self {
        match self {
            Slot::Leaf(hash, key, value) => Slot::Leaf(*hash, key.clone(), value.clone()),
            Slot::Collision(hash, entries) => Slot::Collision(*hash, entries.clone()),
            Slot::Node(node) => Slot::Node(node.clone()),
        }
    }
}

impl<K, V> Slot<K, V> {
    fn hash(&self) -> Option<u64> {
        match self {
            Slot::Leaf(hash, ..) | Slot::Collision(hash, _) => Some(*hash),
            Slot::Node(_) => None,
        }
    }
}

/// The fragment of `hash` that indexes the level at `shift`.
#[inline(always)]
fn fragment(hash: u64, shift: u32) -> u32 {
    debug_assert!(shift < 64);
    (hash >> shift) as u32 & MASK
}

/// The index in `slots` of the slot for `bit` (one set bit).
#[inline(always)]
fn slot_index(bitmap: u32, bit: u32) -> usize {
    (bitmap & (bit - 1)).count_ones() as usize
}

impl<K, V> Node<K, V> {
    fn with_slot(shift: u32, hash: u64, slot: Slot<K, V>) -> Self {
        Self {
            bitmap: 1 << fragment(hash, shift),
            slots: Arc::new([slot]),
        }
    }
}

impl<K: Clone + Eq, V: Clone> Node<K, V> {
    /// The slots, to change in place: copied first if a clone shares them.
    fn slots_mut(&mut self) -> &mut [Slot<K, V>] {
        if Arc::get_mut(&mut self.slots).is_none() {
            self.slots = self.slots.iter().cloned().collect();
        }
        Arc::get_mut(&mut self.slots).unwrap_or(&mut [])
    }

    fn insert(&mut self, shift: u32, hash: u64, key: K, value: V) -> Option<V> {
        let bit = 1 << fragment(hash, shift);
        let at = slot_index(self.bitmap, bit);
        if self.bitmap & bit == 0 {
            let slots = &self.slots;
            self.slots = slots[..at]
                .iter()
                .cloned()
                .chain(iter::once(Slot::Leaf(hash, key, value)))
                .chain(slots[at..].iter().cloned())
                .collect();
            self.bitmap |= bit;
            return None;
        }
        let slot = &mut self.slots_mut()[at];
        match slot {
            Slot::Node(child) => child.insert(shift + BITS, hash, key, value),
            Slot::Leaf(other, k, v) if *other == hash => {
                if *k == key {
                    return Some(mem::replace(v, value));
                }
                let first = (k.clone(), v.clone());
                *slot = Slot::Collision(hash, vec![first, (key, value)]);
                None
            }
            Slot::Collision(other, entries) if *other == hash => {
                if let Some((_, v)) = entries.iter_mut().find(|(k, _)| *k == key) {
                    return Some(mem::replace(v, value));
                }
                entries.push((key, value));
                None
            }
            Slot::Leaf(other, ..) | Slot::Collision(other, _) => {
                // Both hashes share every fragment up to this level, and
                // differ in a later one: the slot moves one level down.
                debug_assert!(shift + BITS < 64);
                let other = *other;
                let placeholder = Slot::Collision(other, Vec::new());
                let moved = mem::replace(slot, placeholder);
                let mut child = Node::with_slot(shift + BITS, other, moved);
                let old = child.insert(shift + BITS, hash, key, value);
                *slot = Slot::Node(child);
                old
            }
        }
    }

    /// Removes `key`, which the caller has found in this subtree.
    fn remove<Q>(&mut self, shift: u32, hash: u64, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let bit = 1 << fragment(hash, shift);
        if self.bitmap & bit == 0 {
            return None;
        }
        let at = slot_index(self.bitmap, bit);
        let slot = &mut self.slots_mut()[at];
        let (value, now_empty) = match slot {
            Slot::Leaf(other, k, _) => {
                if *other != hash || (*k).borrow() != key {
                    return None;
                }
                let Slot::Leaf(_, _, value) = mem::replace(slot, Slot::Collision(hash, Vec::new()))
                else {
                    unreachable!("matched a leaf above");
                };
                (value, true)
            }
            Slot::Collision(other, entries) => {
                if *other != hash {
                    return None;
                }
                let i = entries.iter().position(|(k, _)| k.borrow() == key)?;
                let (_, value) = entries.swap_remove(i);
                if entries.len() == 1 {
                    if let Some((k, v)) = entries.pop() {
                        *slot = Slot::Leaf(hash, k, v);
                    }
                }
                (value, false)
            }
            Slot::Node(child) => {
                let value = child.remove(shift + BITS, hash, key)?;
                if child.slots.is_empty() {
                    (value, true)
                } else {
                    if child.slots.len() == 1 && child.slots[0].hash().is_some() {
                        // A child with one leaf: the leaf comes back up.
                        let leaf = child.slots[0].clone();
                        *slot = leaf;
                    }
                    (value, false)
                }
            }
        };
        if now_empty {
            let slots = &self.slots;
            self.slots = slots[..at]
                .iter()
                .chain(&slots[at + 1..])
                .cloned()
                .collect();
            self.bitmap &= !bit;
        }
        Some(value)
    }

    fn get_mut<Q>(&mut self, shift: u32, hash: u64, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let bit = 1 << fragment(hash, shift);
        if self.bitmap & bit == 0 {
            return None;
        }
        let at = slot_index(self.bitmap, bit);
        match &mut self.slots_mut()[at] {
            Slot::Leaf(other, k, v) if *other == hash && (*k).borrow() == key => Some(v),
            Slot::Collision(other, entries) if *other == hash => entries
                .iter_mut()
                .find(|(k, _)| k.borrow() == key)
                .map(|(_, v)| v),
            Slot::Leaf(..) | Slot::Collision(..) => None,
            Slot::Node(child) => child.get_mut(shift + BITS, hash, key),
        }
    }
}

impl<K, V, S: Clone> Clone for HashTrie<K, V, S> {
    fn clone(&self) -> Self {
        Self {
            root: self.root.clone(),
            len: self.len,
            hasher: self.hasher.clone(),
        }
    }
}

impl<K, V, S: Default> Default for HashTrie<K, V, S> {
    fn default() -> Self {
        Self {
            root: None,
            len: 0,
            hasher: S::default(),
        }
    }
}

impl<K, V, S> HashTrie<K, V, S> {
    /// The number of entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the map has no entry.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries, in no particular order (the same for equal maps made
    /// the same way).
    pub(crate) fn iter(&self) -> Iter<'_, K, V> {
        let mut stack = SmallVec::new();
        if let Some(root) = &self.root {
            stack.push(root.slots.iter());
        }
        Iter {
            stack,
            collision: [].iter(),
        }
    }
}

impl<K: Hash + Eq, V, S: BuildHasher> HashTrie<K, V, S> {
    /// The value of `key`.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let mut node = self.root.as_ref()?;
        let mut shift = 0;
        loop {
            let bit = 1 << fragment(hash, shift);
            if node.bitmap & bit == 0 {
                return None;
            }
            match node.slots.get(slot_index(node.bitmap, bit))? {
                Slot::Leaf(other, k, v) => {
                    return (*other == hash && k.borrow() == key).then_some(v);
                }
                Slot::Collision(other, entries) => {
                    return if *other == hash {
                        entries
                            .iter()
                            .find(|(k, _)| k.borrow() == key)
                            .map(|(_, v)| v)
                    } else {
                        None
                    };
                }
                Slot::Node(child) => {
                    node = child;
                    shift += BITS;
                }
            }
        }
    }

    /// Whether the map holds `key`.
    pub(crate) fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }
}

impl<K: Hash + Eq + Clone, V: Clone, S: BuildHasher> HashTrie<K, V, S> {
    /// Sets `key` to `value`, returning the value it replaced.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let hash = self.hasher.hash_one(&key);
        let old = match &mut self.root {
            Some(root) => root.insert(0, hash, key, value),
            None => {
                self.root = Some(Node::with_slot(0, hash, Slot::Leaf(hash, key, value)));
                None
            }
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes `key`, returning its value. Copies nothing if `key` is
    /// absent.
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.contains_key(key) {
            return None;
        }
        let hash = self.hasher.hash_one(key);
        let root = self.root.as_mut()?;
        let value = root.remove(0, hash, key)?;
        if root.slots.is_empty() {
            self.root = None;
        }
        self.len -= 1;
        Some(value)
    }

    /// The value of `key`, to change in place (copying its path). Copies
    /// nothing if `key` is absent.
    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.contains_key(key) {
            return None;
        }
        let hash = self.hasher.hash_one(key);
        self.root.as_mut()?.get_mut(0, hash, key)
    }
}

/// The entries of a [`HashTrie`], depth first.
pub(crate) struct Iter<'a, K, V> {
    /// The slots left at each level of the path being walked.
    stack: SmallVec<[std::slice::Iter<'a, Slot<K, V>>; 8]>,
    /// The entries left in the current collision slot.
    collision: std::slice::Iter<'a, (K, V)>,
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((k, v)) = self.collision.next() {
                return Some((k, v));
            }
            match self.stack.last_mut()?.next() {
                None => {
                    self.stack.pop();
                }
                Some(Slot::Leaf(_, k, v)) => return Some((k, v)),
                Some(Slot::Collision(_, entries)) => self.collision = entries.iter(),
                Some(Slot::Node(child)) => self.stack.push(child.slots.iter()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, hash::Hasher};

    use proptest::prelude::*;

    use super::*;

    /// Hashes a `u64` to itself masked to a few bits, so that tests reach
    /// deep levels and full collisions.
    #[derive(Clone, Default)]
    struct Narrow;

    struct NarrowHasher(u64);

    impl Hasher for NarrowHasher {
        fn finish(&self) -> u64 {
            // Bits 0-2 and 61-63 only: the first and the last level (twelve
            // levels apart), and full collisions (keys that differ only in
            // the bit that lands on 60).
            self.0 & 0xE000_0000_0000_0007
        }
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(b);
            }
        }
        fn write_u64(&mut self, n: u64) {
            // Key bits 0-3 land on 60-63, bits 4-6 on 0-2.
            self.0 = n.rotate_right(4);
        }
    }

    impl BuildHasher for Narrow {
        type Hasher = NarrowHasher;
        fn build_hasher(&self) -> NarrowHasher {
            NarrowHasher(0)
        }
    }

    fn check<S: BuildHasher>(trie: &HashTrie<u64, u32, S>, model: &BTreeMap<u64, u32>) {
        assert_eq!(trie.len(), model.len());
        assert_eq!(trie.is_empty(), model.is_empty());
        let mut all: Vec<(u64, u32)> = trie.iter().map(|(k, v)| (*k, *v)).collect();
        all.sort_unstable();
        let want: Vec<(u64, u32)> = model.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(all, want);
        for (k, v) in model {
            assert_eq!(trie.get(k), Some(v));
        }
        if model.is_empty() {
            assert!(trie.root.is_none());
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "no unsafe code to check; slow under Miri")]
    fn insert_get_remove() {
        let mut trie: HashTrie<u64, u32> = HashTrie::default();
        let mut model = BTreeMap::new();
        let n: u64 = if cfg!(miri) { 100 } else { 2_000 };
        for i in 0..n {
            assert_eq!(trie.insert(i, i as u32), None);
            model.insert(i, i as u32);
        }
        assert_eq!(trie.insert(7, 70), Some(7));
        model.insert(7, 70);
        check(&trie, &model);
        for i in (0..n).step_by(3) {
            assert_eq!(trie.remove(&i), model.remove(&i));
        }
        assert_eq!(trie.remove(&3), None);
        check(&trie, &model);
        *trie.get_mut(&1).unwrap() = 11;
        model.insert(1, 11);
        assert!(trie.get_mut(&3).is_none());
        check(&trie, &model);
        for i in 0..n {
            assert_eq!(trie.remove(&i), model.remove(&i));
        }
        check(&trie, &model);
    }

    #[test]
    fn clones_are_independent() {
        let mut a: HashTrie<u64, u32> = HashTrie::default();
        for i in 0..100 {
            a.insert(i, 0);
        }
        let b = a.clone();
        for i in 0..50 {
            a.remove(&i);
            a.insert(i + 1_000, 1);
        }
        *a.get_mut(&60).unwrap() = 2;
        assert_eq!(b.len(), 100);
        assert!((0..100).all(|i| b.get(&i) == Some(&0)));
        assert_eq!(a.len(), 100);
        assert_eq!(a.get(&60), Some(&2));
        assert_eq!(a.get(&10), None);
    }

    #[test]
    fn string_keys_borrow() {
        let mut trie: HashTrie<Arc<str>, u32> = HashTrie::default();
        trie.insert(Arc::from("a.b"), 1);
        assert_eq!(trie.get("a.b"), Some(&1));
        assert_eq!(trie.get("a.c"), None);
        assert_eq!(trie.remove("a.b"), Some(1));
        assert!(trie.is_empty());
    }

    proptest! {
        #![proptest_config(crate::test_strategies::config())]

        /// With a hasher that keeps few bits, keys collide in part and in
        /// full; the trie still agrees with a `BTreeMap`, and every
        /// earlier clone keeps its contents.
        #[test]
        #[cfg_attr(miri, ignore = "no unsafe code to check; slow under Miri")]
        fn matches_btree_map(ops in prop::collection::vec((any::<bool>(), 0..64u64, any::<u32>()), 0..if cfg!(miri) { 40 } else { 200 })) {
            let mut trie: HashTrie<u64, u32, Narrow> = HashTrie::default();
            let mut model = BTreeMap::new();
            let mut versions = Vec::new();
            for (insert, key, value) in ops {
                if insert {
                    prop_assert_eq!(trie.insert(key, value), model.insert(key, value));
                } else {
                    prop_assert_eq!(trie.remove(&key), model.remove(&key));
                }
                versions.push((trie.clone(), model.clone()));
            }
            for (trie, model) in &versions {
                check(trie, model);
            }
        }
    }
}
