//! Persistent (structurally shared) collections for the registry.
//!
//! A registry snapshot is immutable once published, so every update makes a
//! successor. With these collections a successor shares everything the
//! update did not touch with its predecessor: an update copies the path to
//! what it changes (a few small nodes), not the registry. All four copy
//! paths of `Arc` nodes, in safe code, and change a node in place where no
//! clone shares it:
//!
//! 1. [`HashTrie`]: a hash array mapped trie (Bagwell, "Ideal Hash Trees",
//!    2001), a map with `O(log16 n)` lookups, inserts and removes;
//! 2. [`PVec`]: a radix-32 vector indexed by `u32`, append and set only
//!    (the topic routes; a lookup among the first 32 is a `Vec`'s, one
//!    bounds test and one load, and one node per level after those);
//! 3. [`IdMap`]: a sparse radix-8 map keyed by `u64` (the subscriptions,
//!    by id): ids handed out in order share leaves, so an update copies
//!    the newest entries, still in cache, and removes free emptied nodes;
//! 4. [`OrdTree`]: a B+ tree in key order with entries inline in wide
//!    leaves (the index's literal patterns, by text): an update copies one
//!    leaf of plain data and a few branches, and keys made in sequence
//!    share a path that stays in cache.
//!
//! What an update costs is mostly the slots it copies that hold reference
//! counts: each is an atomic increment now and a decrement when the old
//! version goes, on the line of the thing counted, which for a map of
//! 100 000 entries is seldom in cache. Hence `IdMap` for ids, and an
//! `OrdTree` of plain data (no count but in its branches) for the index's
//! literal map.
//!
//! Their nodes are std `Arc`s: immutable data that is part of no protocol,
//! which loom need not model (the values in them may be loom's).

mod hash_trie;
mod id_map;
mod ord_tree;
mod vec;

pub(crate) use self::{hash_trie::HashTrie, id_map::IdMap, ord_tree::OrdTree, vec::PVec};
