//! A trie of subscription patterns, resolving which patterns match a topic.
//!
//! [`PatternIndex`] is consulted when subscriptions change (to rebuild the
//! per-topic routing), not on every publish. A lookup walks the topic's
//! segments through the trie, so its cost depends on the number of segments
//! and on how many wildcard branches exist, not on the number of patterns.
//!
//! The index is persistent: it lives in every registry snapshot, and a
//! clone shares all of it. An insert or a remove copies the trie nodes on
//! its pattern's path (each `Arc::make_mut`), and in each of them the path
//! of one [`HashTrie`] (the literal children, or the values), so it costs
//! `O(segments × log32 n)`, however many patterns share a node.

use smallvec::SmallVec;

use crate::{
    persist::HashTrie,
    sync::StdArc,
    topic::{Pattern, PatternSegment},
};

/// One trie node: the patterns sharing a prefix of segments.
struct Node<V> {
    /// Children for literal segments.
    literals: HashTrie<StdArc<str>, StdArc<Node<V>>>,
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
            literals: HashTrie::default(),
            star: None,
            exact: HashTrie::default(),
            tail: HashTrie::default(),
        }
    }
}

impl<V: std::hash::Hash + Eq + Clone> Node<V> {
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
                if !self.literals.contains_key(literal) {
                    self.literals
                        .insert(StdArc::from(literal), StdArc::default());
                }
                if let Some(child) = self.literals.get_mut(literal) {
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
                let Some(child) = self.literals.get_mut(literal) else {
                    return false;
                };
                let child = StdArc::make_mut(child);
                let removed = child.remove(segments, value);
                if removed && child.is_empty() {
                    self.literals.remove(literal);
                }
                removed
            }
        }
    }
}

/// Adds one occurrence of `value` to the counted set `values`.
fn add_one<V: std::hash::Hash + Eq + Clone>(values: &mut HashTrie<V, u32>, value: V) {
    match values.get_mut(&value) {
        Some(count) => *count += 1,
        None => {
            values.insert(value, 1);
        }
    }
}

/// Removes one occurrence of `value` from the counted set `values`.
fn remove_one<V: std::hash::Hash + Eq + Clone>(values: &mut HashTrie<V, u32>, value: &V) -> bool {
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
    root: Node<V>,
    len: usize,
}

impl<V> Clone for PatternIndex<V> {
    fn clone(&self) -> Self {
        PatternIndex {
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
        V: std::hash::Hash + Eq,
    {
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
            if let Some(child) = node.literals.get(segment) {
                stack.push((child, next));
            }
            if let Some(child) = node.star.as_deref() {
                stack.push((child, next));
            }
        }
    }
}

impl<V: std::hash::Hash + Eq + Clone> PatternIndex<V> {
    /// Adds `value` under `pattern`.
    pub(crate) fn insert(&mut self, pattern: &Pattern, value: V) {
        self.root.insert(pattern.segments(), value);
        self.len += 1;
    }

    /// Removes one occurrence of `value` under `pattern`, pruning trie nodes
    /// left empty. Returns whether an occurrence was found.
    pub(crate) fn remove(&mut self, pattern: &Pattern, value: &V) -> bool {
        let removed = self.root.remove(pattern.segments(), value);
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
        #![proptest_config(ProptestConfig {
            // Under Miri each persistent-trie update is slow: fewer cases.
            cases: if cfg!(miri) { 2 } else { 256 },
            // No regression files: Miri's isolation forbids file access.
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn matches_brute_force(
            ops in prop::collection::vec(op_strategy(), 0..if cfg!(miri) { 12 } else { 40 }),
            topics in prop::collection::vec(topic_strategy(SEGMENTS), 1..8),
        ) {
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
            }
        }
    }
}
