//! Persistent (structurally shared) collections for the registry.
//!
//! A registry snapshot is immutable once published, so every update makes a
//! successor. With these collections a successor shares everything the
//! update did not touch with its predecessor: an update copies the path to
//! what it changes (a few small nodes), not the registry.
//! Both use path copying over `Arc` nodes (`Arc::make_mut`), in safe code:
//!
//! 1. [`HashTrie`]: a hash array mapped trie (Bagwell, "Ideal Hash Trees",
//!    2001), a map with `O(log16 n)` lookups, inserts and removes;
//! 2. [`PVec`]: a radix-32 vector indexed by `u32`, append and set only
//!    (the topic routes; a lookup is one bounds test and one node per
//!    level, a single leaf up to 32 topics).
//!
//! Their nodes are std `Arc`s: immutable data that is part of no protocol,
//! which loom need not model (the values in them may be loom's).

mod hash_trie;
mod vec;

pub(crate) use self::{hash_trie::HashTrie, vec::PVec};
