//! The registry: an immutable snapshot of subscriptions and resolved routes.
//!
//! A [`Registry`] is never mutated once published. Subscribe, unsubscribe,
//! topic interning and shutdown each build a successor with
//! [`SnapshotCell::rcu`](crate::sync::SnapshotCell::rcu) or `swap`, so
//! publishers read it without a lock and concurrent updates never lose each
//! other.
//!
//! Matching happens here, when the registry changes: every interned topic
//! carries its [`Route`], the rings whose filter matches it. A publish on an
//! interned topic is one index into `routes`, whatever the number of
//! patterns. A topic that was never interned is resolved through the
//! [`PatternIndex`] trie, whose cost depends on the topic's segments.
//!
//! # Updates cost what they change
//!
//! Every part of a registry is persistent (see `persist/`): a successor
//! shares with its predecessor everything the update did not touch, so
//! making one costs what the update changes, not the registry's size:
//!
//! - subscribe or unsubscribe: the subscription's entry (`O(log8 id)`,
//!   in an [`IdMap`] whose newest leaf is the one a new id lands in), its
//!   patterns in the index (`O(log n)` for a literal pattern, in the
//!   index's literal map, `O(segments × log n)` for a wildcard), and the
//!   routes of the interned topics it matches, each rebuilt
//!   (`O(route length)`), the others shared. A literal pattern finds its
//!   topic with one lookup; a wildcard is tested against each interned
//!   topic (matching a new pattern is the work a subscribe is for), without
//!   copying any;
//! - interning a topic: its route, resolved through the index, and one
//!   entry in the name map and the route vector.

use smallvec::SmallVec;

use crate::{
    index::PatternIndex,
    persist::{HashTrie, IdMap, PVec},
    ring::Ring,
    sync::{Arc, StdArc},
    topic::Pattern,
};

/// The rings one topic delivers to, by descending priority, then in
/// subscription order. Shared by every snapshot until a subscription that
/// matches the topic comes or goes.
pub(crate) type Route<E> = StdArc<[Arc<Ring<E>>]>;

/// One live subscription as the registry knows it.
pub(crate) struct SubEntry<E> {
    pub(crate) id: u64,
    pub(crate) ring: Arc<Ring<E>>,
    pub(crate) patterns: StdArc<[Pattern]>,
    pub(crate) name: Option<StdArc<str>>,
}

impl<E> Clone for SubEntry<E> {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            ring: Arc::clone(&self.ring),
            patterns: StdArc::clone(&self.patterns),
            name: self.name.clone(),
        }
    }
}

/// An immutable snapshot of subscriptions and routes.
pub(crate) struct Registry<E> {
    /// Set by shutdown: publishes return `Closed`, subscribes fail.
    pub(crate) closed: bool,
    /// A single-producer bus: only its `SoloPublisher` may publish. The
    /// one home of the bus's mode, set when the bus is made: a publish
    /// tests it with `closed` in one branch ([`Registry::refuses`]), and
    /// subscribe reads it to make single-producer rings. (`SoloPublisher`
    /// carries the mode in its type, `DeliveryMode::SOLO`; each ring, in
    /// its `Mode`.)
    pub(crate) solo: bool,
    /// Live subscriptions by id (an `Arc` each, so that copying a node
    /// costs one count per entry; ids come in order, so the entries a new
    /// subscription's leaf copies are the newest ones, still in cache).
    subs: IdMap<StdArc<SubEntry<E>>>,
    /// Subscription ids by pattern, for resolving a topic.
    index: PatternIndex<u64>,
    /// Interned topic name to its id (an index into `routes`).
    topics: HashTrie<StdArc<str>, u32>,
    /// The route of each interned topic.
    routes: PVec<Route<E>>,
}

impl<E> Clone for Registry<E> {
    fn clone(&self) -> Self {
        Self {
            closed: self.closed,
            solo: self.solo,
            subs: self.subs.clone(),
            index: self.index.clone(),
            topics: self.topics.clone(),
            routes: self.routes.clone(),
        }
    }
}

impl<E> Registry<E> {
    pub(crate) fn new() -> Self {
        Self {
            closed: false,
            solo: false,
            subs: IdMap::default(),
            index: PatternIndex::new(),
            topics: HashTrie::default(),
            routes: PVec::default(),
        }
    }

    /// Whether a multi-producer publish must be refused (closed, or a
    /// single-producer bus). One test on the fast path for both.
    #[inline]
    pub(crate) fn refuses(&self) -> bool {
        self.closed | self.solo
    }

    /// The error for a refused multi-producer publish.
    #[cold]
    pub(crate) fn refusal<T>(&self, event: T) -> crate::error::PublishError<T> {
        if self.closed {
            crate::error::PublishError::Closed(event)
        } else {
            crate::error::PublishError::NotTheProducer(event)
        }
    }

    /// The rings of interned topic `id`.
    #[inline]
    pub(crate) fn route(&self, id: u32) -> &[Arc<Ring<E>>] {
        self.routes.get(id).map_or(&[], |r| r)
    }

    pub(crate) fn topic_id(&self, name: &str) -> Option<u32> {
        self.topics.get(name).copied()
    }

    /// The live subscriptions, by id.
    pub(crate) fn subs(&self) -> impl Iterator<Item = &SubEntry<E>> {
        self.subs.iter().map(|entry| &**entry)
    }

    /// Whether subscription `id` is registered.
    pub(crate) fn has_sub(&self, id: u64) -> bool {
        self.subs.get(id).is_some()
    }

    /// The number of live subscriptions.
    pub(crate) fn sub_count(&self) -> usize {
        self.subs.len()
    }

    pub(crate) fn topic_count(&self) -> usize {
        self.routes.len() as usize
    }

    /// Calls `f` with each ring whose filter matches `topic`, once each, in
    /// route order (descending priority, then subscription order), without
    /// interning it. `topic` must be valid.
    pub(crate) fn resolve(&self, topic: &str, mut f: impl FnMut(&Arc<Ring<E>>)) {
        let mut ids: SmallVec<[u64; 8]> = SmallVec::new();
        self.index.for_each_match(topic, |id| ids.push(*id));
        ids.sort_unstable();
        ids.dedup();
        let mut rings: SmallVec<[&Arc<Ring<E>>; 8]> = ids
            .iter()
            .filter_map(|&id| self.subs.get(id))
            .map(|e| &e.ring)
            .collect();
        // Stable: equal priorities stay in subscription order.
        rings.sort_by_key(|ring| std::cmp::Reverse(ring.priority()));
        for ring in rings {
            f(ring);
        }
    }

    /// The ids of the interned topics that any of `patterns` matches,
    /// sorted, once each: a lookup for a literal pattern, a test of every
    /// interned topic for a wildcard.
    fn matching_topics(&self, patterns: &[Pattern]) -> SmallVec<[u32; 8]> {
        let mut ids = SmallVec::new();
        let mut wildcards: SmallVec<[&Pattern; 4]> = SmallVec::new();
        for pattern in patterns {
            if pattern.is_literal() {
                ids.extend(self.topic_id(pattern.as_str()));
            } else {
                wildcards.push(pattern);
            }
        }
        if !wildcards.is_empty() {
            for (name, &id) in self.topics.iter() {
                if wildcards.iter().any(|p| p.matches(name)) {
                    ids.push(id);
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// A successor with `name` interned, and its id. `name` must be valid.
    pub(crate) fn with_topic(&self, name: &str) -> (Self, u32) {
        let mut next = self.clone();
        let id = next.intern(name);
        (next, id)
    }

    /// Interns `name` in place and returns its id.
    ///
    /// # Panics
    ///
    /// On the 2^32nd interned topic.
    pub(crate) fn intern(&mut self, name: &str) -> u32 {
        if let Some(id) = self.topic_id(name) {
            return id;
        }
        let id = self.routes.len();
        let mut rings = Vec::new();
        self.resolve(name, |ring| rings.push(Arc::clone(ring)));
        self.routes.push(Route::from(rings));
        self.topics.insert(StdArc::from(name), id);
        id
    }

    /// A successor with `entry` added to every route it matches.
    pub(crate) fn with_sub(&self, entry: SubEntry<E>) -> Self {
        let mut next = self.clone();
        for pattern in entry.patterns.iter() {
            next.index.insert(pattern, entry.id);
        }
        let priority = entry.ring.priority();
        for id in self.matching_topics(&entry.patterns) {
            let route = self.route(id);
            // After every ring of the same or a higher priority. (Ids are
            // taken before the rcu, so concurrent subscribes can land out of
            // id order; a route then lists them in landing order.)
            let at = route.partition_point(|r| r.priority() >= priority);
            let mut rings = Vec::with_capacity(route.len() + 1);
            rings.extend(route[..at].iter().cloned());
            rings.push(Arc::clone(&entry.ring));
            rings.extend(route[at..].iter().cloned());
            next.routes.set(id, Route::from(rings));
        }
        next.subs.insert(entry.id, StdArc::new(entry));
        next
    }

    /// A successor without subscription `id`, and its entry; `None` if the
    /// registry does not hold it.
    pub(crate) fn without_sub(&self, id: u64) -> Option<(Self, SubEntry<E>)> {
        let entry = SubEntry::clone(self.subs.get(id)?);
        let mut next = self.clone();
        next.subs.remove(id);
        for pattern in entry.patterns.iter() {
            next.index.remove(pattern, &id);
        }
        for topic in self.matching_topics(&entry.patterns) {
            let route = self.route(topic);
            if route.iter().any(|ring| Arc::ptr_eq(ring, &entry.ring)) {
                let rings: Vec<_> = route
                    .iter()
                    .filter(|ring| !Arc::ptr_eq(ring, &entry.ring))
                    .cloned()
                    .collect();
                next.routes.set(topic, Route::from(rings));
            }
        }
        Some((next, entry))
    }

    /// The registry after shutdown: closed, with no routes, keeping its
    /// subscriptions so snapshots still report them.
    pub(crate) fn closed_successor(&self) -> Self {
        let mut next = self.clone();
        next.closed = true;
        let empty: Route<E> = Route::from(Vec::new());
        let mut routes = PVec::default();
        for _ in 0..self.routes.len() {
            routes.push(StdArc::clone(&empty));
        }
        next.routes = routes;
        next
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::Reverse;

    use proptest::prelude::*;

    use super::*;
    use crate::test_strategies::{pattern_strategy, topic_strategy};
    use crate::{policy::Overflow, ring::Totals};

    /// A subscription of the model: what the registry must route.
    #[derive(Clone)]
    struct ModelSub {
        id: u64,
        patterns: Vec<Pattern>,
        ring: Arc<Ring<u32>>,
    }

    /// Ring addresses, for comparing routes.
    fn addrs(rings: &[Arc<Ring<u32>>]) -> Vec<usize> {
        rings.iter().map(addr).collect()
    }

    fn addr(ring: &Arc<Ring<u32>>) -> usize {
        Arc::as_ptr(ring) as usize
    }

    /// The route of `topic` built from scratch: every matching
    /// subscription, by descending priority, then by id.
    fn from_scratch(model: &[ModelSub], topic: &str) -> Vec<usize> {
        let mut matching: Vec<&ModelSub> = model
            .iter()
            .filter(|s| s.patterns.iter().any(|p| p.matches(topic)))
            .collect();
        matching.sort_by_key(|s| s.id);
        matching.sort_by_key(|s| Reverse(s.ring.priority()));
        matching.iter().map(|s| addr(&s.ring)).collect()
    }

    /// Every interned topic's route, every topic's resolution (interned or
    /// not), the ids of the interned topics and the subscription set agree
    /// with the model.
    fn check(
        registry: &Registry<u32>,
        model: &[ModelSub],
        interned: &[String],
        probes: &[String],
    ) -> Result<(), TestCaseError> {
        prop_assert_eq!(registry.topic_count(), interned.len());
        for (id, name) in interned.iter().enumerate() {
            prop_assert_eq!(registry.topic_id(name), Some(id as u32));
            let want = from_scratch(model, name);
            prop_assert_eq!(addrs(registry.route(id as u32)), want, "route of {}", name);
        }
        for topic in interned.iter().chain(probes) {
            let mut got = Vec::new();
            registry.resolve(topic, |ring| got.push(addr(ring)));
            prop_assert_eq!(got, from_scratch(model, topic), "resolve {}", topic);
        }
        let mut ids: Vec<u64> = registry.subs().map(|e| e.id).collect();
        ids.sort_unstable();
        prop_assert_eq!(ids, model.iter().map(|s| s.id).collect::<Vec<_>>());
        prop_assert_eq!(registry.sub_count(), model.len());
        Ok(())
    }

    /// The most segments a generated pattern or topic has.
    const SEGMENTS: usize = 3;

    #[derive(Debug, Clone)]
    enum Op {
        Subscribe(Vec<String>, i32),
        /// Unsubscribes the live subscription at this index (modulo).
        Unsubscribe(usize),
        /// Unsubscribes an id the registry does not hold.
        UnsubscribeUnknown,
        Intern(String),
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (prop::collection::vec(pattern_strategy(SEGMENTS), 1..=3), 0..3i32)
                .prop_map(|(patterns, priority)| Op::Subscribe(patterns, priority)),
            3 => any::<usize>().prop_map(Op::Unsubscribe),
            1 => Just(Op::UnsubscribeUnknown),
            2 => topic_strategy(SEGMENTS).prop_map(Op::Intern),
        ]
    }

    proptest! {
        #![proptest_config(crate::test_strategies::config())]

        /// The registry updated step by step (each subscribe and
        /// unsubscribe rebuilding only the routes it touches) routes every
        /// topic exactly as a registry built from scratch would, after
        /// every step; and every earlier snapshot still routes as it did,
        /// although its successors share its structure.
        #[test]
        #[cfg_attr(miri, ignore = "no unsafe code to check; slow under Miri")]
        fn incremental_routes_equal_a_rebuild(
            ops in prop::collection::vec(op_strategy(), 0..if cfg!(miri) { 16 } else { 48 }),
            probes in prop::collection::vec(topic_strategy(SEGMENTS), 1..6),
        ) {
            let totals = Arc::new(Totals::default());
            let mut registry: Registry<u32> = Registry::new();
            let mut model: Vec<ModelSub> = Vec::new();
            let mut interned: Vec<String> = Vec::new();
            let mut next_id = 1;
            // Each snapshot with the model state it must match.
            let mut versions: Vec<(Registry<u32>, Vec<ModelSub>, usize)> = Vec::new();
            for op in ops {
                match op {
                    Op::Subscribe(texts, priority) => {
                        let filter = crate::filter::Filter::patterns(&texts).unwrap();
                        let patterns = filter.into_patterns();
                        let ring = Arc::new(
                            Ring::new(1, Overflow::DropNewest, Arc::clone(&totals))
                                .unwrap()
                                .with_priority(priority),
                        );
                        let entry = SubEntry {
                            id: next_id,
                            ring: Arc::clone(&ring),
                            patterns: patterns.clone().into(),
                            name: None,
                        };
                        registry = registry.with_sub(entry);
                        model.push(ModelSub { id: next_id, patterns, ring });
                        next_id += 1;
                    }
                    Op::Unsubscribe(at) => {
                        if model.is_empty() {
                            continue;
                        }
                        let gone = model.remove(at % model.len());
                        let (next, entry) = registry.without_sub(gone.id).unwrap();
                        prop_assert_eq!(entry.id, gone.id);
                        prop_assert!(Arc::ptr_eq(&entry.ring, &gone.ring));
                        registry = next;
                    }
                    Op::UnsubscribeUnknown => {
                        prop_assert!(registry.without_sub(next_id + 7).is_none());
                    }
                    Op::Intern(name) => {
                        let (next, id) = registry.with_topic(&name);
                        match interned.iter().position(|t| *t == name) {
                            Some(at) => prop_assert_eq!(id as usize, at),
                            None => {
                                prop_assert_eq!(id as usize, interned.len());
                                interned.push(name);
                            }
                        }
                        registry = next;
                    }
                }
                check(&registry, &model, &interned, &probes)?;
                versions.push((registry.clone(), model.clone(), interned.len()));
            }
            for (old, model, topics) in &versions {
                check(old, model, &interned[..*topics], &probes)?;
            }
            let closed = registry.closed_successor();
            prop_assert!(closed.closed);
            prop_assert_eq!(closed.topic_count(), interned.len());
            for id in 0..interned.len() {
                prop_assert!(closed.route(id as u32).is_empty());
            }
            check(&registry, &model, &interned, &probes)?;
        }
    }
}
