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
//! - subscribe or unsubscribe: the subscription's entry (`O(log n)`), its
//!   patterns in the index (`O(segments × log n)` each), and the routes of
//!   the interned topics it matches, each rebuilt (`O(route length)`), the
//!   others shared. A literal pattern finds its topic with one lookup; a
//!   wildcard is tested against each interned topic (matching a new
//!   pattern is the work a subscribe is for), without copying any;
//! - interning a topic: its route, resolved through the index, and one
//!   entry in the name map and the route vector.

use smallvec::SmallVec;

use crate::{
    index::PatternIndex,
    persist::{HashTrie, PVec},
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
    /// Live subscriptions by id (an `Arc` each, so that copying a trie node
    /// costs one count per entry).
    subs: HashTrie<u64, StdArc<SubEntry<E>>>,
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
            subs: HashTrie::default(),
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

    /// The live subscriptions, in no particular order.
    pub(crate) fn subs(&self) -> impl Iterator<Item = &SubEntry<E>> {
        self.subs.iter().map(|(_, entry)| &**entry)
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
            .filter_map(|id| self.subs.get(id))
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
        let entry = SubEntry::clone(self.subs.get(&id)?);
        let mut next = self.clone();
        next.subs.remove(&id);
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
