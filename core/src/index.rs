//! A multimap of subscription patterns, resolving which patterns match a
//! topic.
//!
//! [`PatternIndex`] is consulted when subscriptions change (to rebuild the
//! per-topic routing) and to resolve a topic that was never interned, not
//! on every publish. It keeps two structures:
//!
//! - literal patterns (no `*`, no `>`), which match one topic each, their
//!   own text, in one flat map from that text to its values, in text
//!   order (an [`OrdTree`]): a lookup is one walk down a B+ tree;
//! - wildcard patterns in a trie by segment, which a lookup walks along the
//!   topic's segments, so its cost depends on the number of segments and
//!   on how many wildcard branches exist, not on the number of patterns.
//!
//! The index is persistent: it lives in every registry snapshot, and a
//! clone shares all of it. An insert or a remove copies one path of the
//! [`OrdTree`] for a literal pattern (one leaf and `O(log n)` branches), or,
//! for a wildcard, the trie nodes on its path (each `Arc::make_mut`) and in
//! each of them the path of one [`OrdTree`] (the literal children, by
//! text, so that patterns like `load.1.*`, `load.2.*`, … share a path as
//! literal patterns do) or [`HashTrie`] (the values), so
//! `O(segments × log n)`, however many patterns share a node.
//!
//! What such a copy costs at scale is the reference counts in the slots it
//! copies, each on a cache line of its own, and the cold lines it reads.
//! The literal map holds texts of up to [`INLINE`] bytes inline ([`Text`])
//! and one value without a count ([`Holders`]), so copying one of its
//! leaves copies plain data; only its branches hold counts, and few; and
//! patterns named in sequence (`sub.t100`, `sub.t101`, …) land next to
//! each other, so a subscribe copies the path the previous one copied,
//! still in cache.

use smallvec::SmallVec;

use std::{
    borrow::Borrow,
    hash::{Hash, Hasher},
};

use crate::{
    persist::{HashTrie, OrdTree},
    sync::StdArc,
    topic::{Pattern, PatternSegment},
};

/// The longest text held inline by [`Text`].
const INLINE: usize = 22;

/// A literal pattern's text as a key of the literal map: inline up to
/// [`INLINE`] bytes, so that copying it is a copy of 24 bytes, else shared.
/// Hashes and compares as its bytes, so the map is searched with a topic's
/// `as_bytes()`.
#[derive(Clone)]
enum Text {
    Inline(u8, [u8; INLINE]),
    Shared(StdArc<str>),
}

impl Text {
    fn new(text: &str) -> Self {
        let bytes = text.as_bytes();
        match u8::try_from(bytes.len()) {
            Ok(len) if bytes.len() <= INLINE => {
                let mut inline = [0; INLINE];
                inline[..bytes.len()].copy_from_slice(bytes);
                Text::Inline(len, inline)
            }
            _ => Text::Shared(StdArc::from(text)),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Text::Inline(len, bytes) => bytes.get(..usize::from(*len)).unwrap_or_default(),
            Text::Shared(text) => text.as_bytes(),
        }
    }
}

impl Borrow<[u8]> for Text {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

// As `[u8]`'s, which `Borrow` requires.
impl Hash for Text {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Text {}

// As `[u8]`'s, which `Borrow` requires of a key of the literal map.
impl Ord for Text {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The values of one literal pattern, with how many times each was
/// inserted: one inline (the common case: copying it counts nothing), or a
/// map once there are several (behind an `Arc`, so that the literal map's
/// slots stay small: a node of them stays one small allocation).
#[derive(Clone)]
enum Holders<V> {
    One(V, u32),
    /// Never fewer than two values.
    Many(StdArc<HashTrie<V, u32>>),
}

impl<V> Holders<V> {
    /// Calls `f` once per insertion of each value.
    fn for_each(&self, f: &mut impl FnMut(&V)) {
        match self {
            Holders::One(value, count) => {
                for _ in 0..*count {
                    f(value);
                }
            }
            Holders::Many(values) => {
                for (value, &count) in values.iter() {
                    for _ in 0..count {
                        f(value);
                    }
                }
            }
        }
    }
}

impl<V: Hash + Eq + Clone> Holders<V> {
    fn add(&mut self, value: V) {
        match self {
            Holders::One(one, count) if *one == value => *count += 1,
            Holders::One(one, count) => {
                let mut values = HashTrie::default();
                values.insert(one.clone(), *count);
                values.insert(value, 1);
                *self = Holders::Many(StdArc::new(values));
            }
            Holders::Many(values) => add_one(StdArc::make_mut(values), value),
        }
    }

    /// Removes one insertion of `value`; returns whether there was one and
    /// whether none is left.
    fn remove(&mut self, value: &V) -> (bool, bool) {
        match self {
            Holders::One(one, count) if one == value => {
                *count -= 1;
                (true, *count == 0)
            }
            Holders::One(..) => (false, false),
            Holders::Many(values) => {
                let values = StdArc::make_mut(values);
                let removed = remove_one(values, value);
                let last = match values.len() {
                    1 => values
                        .iter()
                        .next()
                        .map(|(one, &count)| (one.clone(), count)),
                    _ => None,
                };
                if let Some((one, count)) = last {
                    *self = Holders::One(one, count);
                }
                (removed, false)
            }
        }
    }
}

/// One trie node: the patterns sharing a prefix of segments.
struct Node<V> {
    /// Children for literal segments, by text (inline, as in the literal
    /// map).
    literals: OrdTree<Text, StdArc<Node<V>>>,
    /// Child for a `*` segment.
    star: Option<StdArc<Node<V>>>,
    /// Values whose pattern ends exactly at this node, with how many times
    /// each was inserted.
    exact: HashTrie<V, u32>,
    /// Values whose pattern ends with `>` right after this node's prefix
    /// (and their counts); they match when at least one topic segment
    /// remains.
    tail: HashTrie<V, u32>,
}

impl<V> Clone for Node<V> {
    fn clone(&self) -> Self {
        Node {
            literals: self.literals.clone(),
            star: self.star.clone(),
            exact: self.exact.clone(),
            tail: self.tail.clone(),
        }
    }
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node {
            literals: OrdTree::default(),
            star: None,
            exact: HashTrie::default(),
            tail: HashTrie::default(),
        }
    }
}

impl<V: Hash + Eq + Clone> Node<V> {
    fn is_empty(&self) -> bool {
        self.literals.is_empty()
            && self.star.is_none()
            && self.exact.is_empty()
            && self.tail.is_empty()
    }

    /// Adds one occurrence of `value` under the pattern rest `segments`.
    /// Recursion depth is bounded by the pattern's segment count (at most
    /// `MAX_SEGMENTS`).
    fn insert<'p, I>(&mut self, mut segments: I, value: V)
    where
        I: Iterator<Item = PatternSegment<'p>>,
    {
        match segments.next() {
            None => add_one(&mut self.exact, value),
            Some(PatternSegment::Tail) => add_one(&mut self.tail, value),
            Some(PatternSegment::Star) => {
                let child = self.star.get_or_insert_with(StdArc::default);
                StdArc::make_mut(child).insert(segments, value);
            }
            Some(PatternSegment::Literal(literal)) => {
                if !self.literals.contains_key(literal.as_bytes()) {
                    self.literals.insert(Text::new(literal), StdArc::default());
                }
                if let Some(child) = self.literals.get_mut(literal.as_bytes()) {
                    StdArc::make_mut(child).insert(segments, value);
                }
            }
        }
    }

    /// Removes one occurrence of `value` under the pattern rest `segments`,
    /// pruning children left empty. Recursion depth is bounded by the
    /// pattern's segment count (at most `MAX_SEGMENTS`).
    fn remove<'p, I>(&mut self, mut segments: I, value: &V) -> bool
    where
        I: Iterator<Item = PatternSegment<'p>>,
    {
        match segments.next() {
            None => remove_one(&mut self.exact, value),
            Some(PatternSegment::Tail) => remove_one(&mut self.tail, value),
            Some(PatternSegment::Star) => {
                let Some(child) = self.star.as_mut() else {
                    return false;
                };
                let child = StdArc::make_mut(child);
                let removed = child.remove(segments, value);
                if removed && child.is_empty() {
                    self.star = None;
                }
                removed
            }
            Some(PatternSegment::Literal(literal)) => {
                let Some(child) = self.literals.get_mut(literal.as_bytes()) else {
                    return false;
                };
                let child = StdArc::make_mut(child);
                let removed = child.remove(segments, value);
                if removed && child.is_empty() {
                    self.literals.remove(literal.as_bytes());
                }
                removed
            }
        }
    }
}

/// Adds one occurrence of `value` to the counted set `values`.
fn add_one<V: Hash + Eq + Clone>(values: &mut HashTrie<V, u32>, value: V) {
    match values.get_mut(&value) {
        Some(count) => *count += 1,
        None => {
            values.insert(value, 1);
        }
    }
}

/// Removes one occurrence of `value` from the counted set `values`.
fn remove_one<V: Hash + Eq + Clone>(values: &mut HashTrie<V, u32>, value: &V) -> bool {
    match values.get(value).copied() {
        None => false,
        Some(1) => values.remove(value).is_some(),
        Some(_) => {
            if let Some(count) = values.get_mut(value) {
                *count -= 1;
            }
            true
        }
    }
}

/// A multimap from [`Pattern`]s to values, answering "which values belong to
/// patterns matching this topic".
///
/// The same `(pattern, value)` pair may be inserted several times; each
/// insertion is reported separately by [`for_each_match`](Self::for_each_match)
/// and undone by one [`remove`](Self::remove).
pub(crate) struct PatternIndex<V> {
    /// The literal patterns, by text.
    literals: OrdTree<Text, Holders<V>>,
    /// The wildcard patterns.
    root: Node<V>,
    len: usize,
}

impl<V> Clone for PatternIndex<V> {
    fn clone(&self) -> Self {
        PatternIndex {
            literals: self.literals.clone(),
            root: self.root.clone(),
            len: self.len,
        }
    }
}

impl<V> Default for PatternIndex<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> PatternIndex<V> {
    /// An empty index.
    pub(crate) fn new() -> Self {
        PatternIndex {
            literals: OrdTree::default(),
            root: Node::default(),
            len: 0,
        }
    }

    /// The number of inserted `(pattern, value)` pairs.
    #[allow(dead_code, reason = "index API; the registry does not need it yet")]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the index holds no pair.
    #[allow(dead_code, reason = "index API; the registry does not need it yet")]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Calls `f` once per inserted `(pattern, value)` pair whose pattern
    /// matches `topic`, in no particular order. The caller deduplicates.
    ///
    /// `topic` should be valid (see [`crate::topic::validate_topic`]); an
    /// invalid topic gives unspecified matches but never a panic.
    pub(crate) fn for_each_match(&self, topic: &str, mut f: impl FnMut(&V))
    where
        V: Hash + Eq,
    {
        if let Some(holders) = self.literals.get(topic.as_bytes()) {
            holders.for_each(&mut f);
        }
        let mut each = |values: &HashTrie<V, u32>| {
            for (value, &count) in values.iter() {
                for _ in 0..count {
                    f(value);
                }
            }
        };
        // (node, rest of the topic after the segments consumed to reach the
        // node; `None` once every segment is consumed).
        let mut stack: SmallVec<[(&Node<V>, Option<&str>); 16]> = SmallVec::new();
        stack.push((&self.root, Some(topic)));
        while let Some((node, rest)) = stack.pop() {
            let Some(rest) = rest else {
                each(&node.exact);
                continue;
            };
            // At least one segment remains: every `>` here matches.
            each(&node.tail);
            let (segment, next) = match rest.split_once('.') {
                Some((segment, next)) => (segment, Some(next)),
                None => (rest, None),
            };
            if let Some(child) = node.literals.get(segment.as_bytes()) {
                stack.push((child, next));
            }
            if let Some(child) = node.star.as_deref() {
                stack.push((child, next));
            }
        }
    }
}

impl<V: Hash + Eq + Clone> PatternIndex<V> {
    /// Adds `value` under `pattern`.
    pub(crate) fn insert(&mut self, pattern: &Pattern, value: V) {
        if pattern.is_literal() {
            // One walk: added, or merged into the holders already there.
            self.literals.upsert(
                Text::new(pattern.as_str()),
                Holders::One(value, 1),
                |holders, new| {
                    if let Holders::One(value, 1) = new {
                        holders.add(value);
                    }
                    None
                },
            );
        } else {
            self.root.insert(pattern.segments(), value);
        }
        self.len += 1;
    }

    /// Removes one occurrence of `value` under `pattern`, pruning trie nodes
    /// left empty. Returns whether an occurrence was found.
    pub(crate) fn remove(&mut self, pattern: &Pattern, value: &V) -> bool {
        let removed = if pattern.is_literal() {
            let text = pattern.as_str().as_bytes();
            // Looked up first: a miss copies nothing.
            let found = match self.literals.get(text) {
                Some(Holders::One(one, _)) => one == value,
                Some(Holders::Many(values)) => values.contains_key(value),
                None => false,
            };
            match self.literals.get_mut(text).filter(|_| found) {
                Some(holders) => {
                    let (removed, empty) = holders.remove(value);
                    if empty {
                        self.literals.remove(text);
                    }
                    removed
                }
                None => false,
            }
        } else {
            self.root.remove(pattern.segments(), value)
        };
        if removed {
            self.len -= 1;
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_strategies::{pattern_strategy, topic_strategy};
    use proptest::prelude::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).unwrap()
    }

    fn matches(index: &PatternIndex<u32>, topic: &str) -> Vec<u32> {
        let mut out = Vec::new();
        index.for_each_match(topic, |v| out.push(*v));
        out.sort_unstable();
        out
    }

    #[test]
    fn empty_index_matches_nothing() {
        let index = PatternIndex::<u32>::new();
        assert!(index.is_empty());
        assert_eq!(index.len(), 0);
        assert!(matches(&index, "a.b").is_empty());
        let default: PatternIndex<u32> = PatternIndex::default();
        assert!(default.is_empty());
    }

    #[test]
    fn literal_star_and_tail() {
        let mut index = PatternIndex::new();
        index.insert(&p("a.b"), 1);
        index.insert(&p("a.*"), 2);
        index.insert(&p("a.>"), 3);
        index.insert(&p(">"), 4);
        index.insert(&p("*"), 5);
        index.insert(&p("*.b.>"), 6);
        assert_eq!(index.len(), 6);
        assert_eq!(matches(&index, "a"), [4, 5]);
        assert_eq!(matches(&index, "a.b"), [1, 2, 3, 4]);
        assert_eq!(matches(&index, "a.c"), [2, 3, 4]);
        assert_eq!(matches(&index, "a.b.c"), [3, 4, 6]);
        assert_eq!(matches(&index, "x.b.c.d"), [4, 6]);
    }

    #[test]
    fn duplicates_are_reported_and_removed_one_at_a_time() {
        let mut index = PatternIndex::new();
        index.insert(&p("a.*"), 7);
        index.insert(&p("a.*"), 7);
        assert_eq!(matches(&index, "a.b"), [7, 7]);
        assert!(index.remove(&p("a.*"), &7));
        assert_eq!(matches(&index, "a.b"), [7]);
        assert!(index.remove(&p("a.*"), &7));
        assert!(!index.remove(&p("a.*"), &7));
        assert!(index.is_empty());
    }

    #[test]
    fn remove_prunes_empty_nodes() {
        let mut index = PatternIndex::new();
        let patterns = ["a.b.c", "a.*.c", "a.>", "*.*.>", "a.b", ">"];
        for (i, s) in patterns.iter().enumerate() {
            index.insert(&p(s), i);
        }
        assert!(!index.remove(&p("a.b.d"), &0));
        assert!(!index.remove(&p("a.b.c"), &1));
        for (i, s) in patterns.iter().enumerate() {
            assert!(index.remove(&p(s), &i), "{s}");
        }
        assert!(index.is_empty());
        assert!(index.root.is_empty());
        assert!(index.literals.is_empty());
    }

    #[test]
    fn literal_texts_short_and_long() {
        let long = "orders.europe.created.version2";
        assert!(long.len() > INLINE);
        let exact = "a".repeat(INLINE);
        assert!(matches!(Text::new(&exact), Text::Inline(..)));
        assert!(matches!(Text::new(long), Text::Shared(_)));
        assert!(Text::new(long) == Text::new(long));
        assert!(Text::new("a.b") != Text::new("a.c"));
        let mut index = PatternIndex::new();
        index.insert(&p(long), 1);
        index.insert(&p(&exact), 2);
        index.insert(&p("a.b"), 3);
        index.insert(&p("a.b"), 4);
        index.insert(&p("a.b"), 3);
        assert_eq!(matches(&index, long), [1]);
        assert_eq!(matches(&index, &exact), [2]);
        assert_eq!(matches(&index, "a.b"), [3, 3, 4]);
        assert_eq!(matches(&index, "orders.europe.created"), [0u32; 0]);
        // A value that a literal does not hold is not removed.
        assert!(!index.remove(&p("a.b"), &5));
        assert!(!index.remove(&p(long), &2));
        assert!(index.remove(&p("a.b"), &3));
        assert_eq!(matches(&index, "a.b"), [3, 4]);
        assert!(index.remove(&p("a.b"), &4));
        assert!(matches!(
            index.literals.get("a.b".as_bytes()),
            Some(Holders::One(3, 1))
        ));
        for (s, v) in [(long, 1), (exact.as_str(), 2), ("a.b", 3)] {
            assert!(index.remove(&p(s), &v), "{s}");
        }
        assert!(index.is_empty());
        assert!(index.literals.is_empty());
    }

    #[test]
    fn odd_topics_do_not_panic() {
        let mut index = PatternIndex::new();
        index.insert(&p(">"), 1);
        index.insert(&p("*.*"), 2);
        for topic in ["", ".", "..", "a.", ".a", "é.ü", "*", ">"] {
            index.for_each_match(topic, |_| {});
        }
    }

    /// The most segments a generated pattern or topic has.
    const SEGMENTS: usize = 4;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(String, u8),
        Remove(String, u8),
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (pattern_strategy(SEGMENTS), 0..3u8).prop_map(|(s, v)| Op::Insert(s, v)),
            1 => (pattern_strategy(SEGMENTS), 0..3u8).prop_map(|(s, v)| Op::Remove(s, v)),
        ]
    }

    proptest! {
        #![proptest_config(crate::test_strategies::config())]

        #[test]

        #[cfg_attr(miri, ignore = "no unsafe code to check; slow under Miri")]
        fn matches_brute_force(
            ops in prop::collection::vec(op_strategy(), 0..if cfg!(miri) { 12 } else { 40 }),
            topics in prop::collection::vec(topic_strategy(SEGMENTS), 1..8),
            long in any::<bool>(),
        ) {
            // Segment `c` made long, so that literal texts are both inline
            // and shared.
            let lengthen = |s: String| {
                if long { s.replace('c', "c_segment_long_enough") } else { s }
            };
            let ops: Vec<Op> = ops
                .into_iter()
                .map(|op| match op {
                    Op::Insert(s, v) => Op::Insert(lengthen(s), v),
                    Op::Remove(s, v) => Op::Remove(lengthen(s), v),
                })
                .collect();
            let topics: Vec<String> = topics.into_iter().map(lengthen).collect();
            let mut index: PatternIndex<(String, u8)> = PatternIndex::new();
            let mut model: Vec<(Pattern, u8)> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(s, v) => {
                        let pattern = p(&s);
                        index.insert(&pattern, (s, v));
                        model.push((pattern, v));
                    }
                    Op::Remove(s, v) => {
                        let pattern = p(&s);
                        let expected = model
                            .iter()
                            .position(|(q, w)| *q == pattern && *w == v)
                            .map(|i| model.swap_remove(i))
                            .is_some();
                        prop_assert_eq!(index.remove(&pattern, &(s, v)), expected);
                    }
                }
                prop_assert_eq!(index.len(), model.len());
                prop_assert_eq!(index.is_empty(), model.is_empty());
            }
            for topic in &topics {
                let mut got = Vec::new();
                index.for_each_match(topic, |(s, v)| got.push((s.clone(), *v)));
                got.sort();
                let mut want: Vec<(String, u8)> = model
                    .iter()
                    .filter(|(q, _)| q.matches(topic))
                    .map(|(q, v)| (q.as_str().to_owned(), *v))
                    .collect();
                want.sort();
                prop_assert_eq!(got, want, "topic {}", topic);
            }
            if model.is_empty() {
                prop_assert!(index.root.is_empty());
                prop_assert!(index.literals.is_empty());
            }
        }
    }
}
