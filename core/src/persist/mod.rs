//! Persistent (structurally shared) collections for the registry.
//!
//! A registry snapshot is immutable once published, so every update makes a
//! successor. With these collections a successor shares everything the
//! update did not touch with its predecessor: an update copies the path to
//! what it changes (a few small nodes), not the registry. Both copy paths
//! of `Arc<[_]>` nodes, in safe code, and change a node in place where no
//! clone shares it:
//!
//! 1. [`HashTrie`]: a hash array mapped trie (Bagwell, "Ideal Hash Trees",
//!    2001), a map with `O(log16 n)` lookups, inserts and removes;
//! 2. [`PVec`]: a radix-32 vector indexed by `u32`, append and set only
//!    (the topic routes; a lookup among the first 32 is a `Vec`'s, one
//!    bounds test and one load, and one node per level after those).
//!
//! Their nodes are std `Arc`s: immutable data that is part of no protocol,
//! which loom need not model (the values in them may be loom's).

mod hash_trie;
mod vec;

pub(crate) use self::{hash_trie::HashTrie, vec::PVec};
