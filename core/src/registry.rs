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

use ahash::AHashMap;
use smallvec::SmallVec;

use crate::{
    index::PatternIndex,
    ring::Ring,
    sync::{Arc, StdArc},
    topic::Pattern,
};

/// The rings one topic delivers to, by descending priority, then in
/// subscription order. Most topics have a few subscribers.
pub(crate) type Route<E> = SmallVec<[Arc<Ring<E>>; 4]>;

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

impl<E> SubEntry<E> {
    fn matches(&self, topic: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(topic))
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
    /// Live subscriptions, sorted by id.
    subs: Vec<SubEntry<E>>,
    /// Subscription ids by pattern, for resolving a topic.
    index: PatternIndex<u64>,
    /// Interned topic name to its id (an index into `routes`).
    topics: AHashMap<StdArc<str>, u32>,
    /// The route of each interned topic.
    routes: Vec<Route<E>>,
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
            subs: Vec::new(),
            index: PatternIndex::new(),
            topics: AHashMap::new(),
            routes: Vec::new(),
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
        self.routes.get(id as usize).map_or(&[], |r| r.as_slice())
    }

    pub(crate) fn topic_id(&self, name: &str) -> Option<u32> {
        self.topics.get(name).copied()
    }

    pub(crate) fn subs(&self) -> &[SubEntry<E>] {
        &self.subs
    }

    pub(crate) fn topic_count(&self) -> usize {
        self.routes.len()
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
            .filter_map(|&id| self.entry(id))
            .map(|e| &e.ring)
            .collect();
        // Stable: equal priorities stay in subscription order.
        rings.sort_by_key(|ring| std::cmp::Reverse(ring.priority()));
        for ring in rings {
            f(ring);
        }
    }

    fn entry(&self, id: u64) -> Option<&SubEntry<E>> {
        self.subs
            .binary_search_by_key(&id, |e| e.id)
            .ok()
            .map(|i| &self.subs[i])
    }

    /// A successor with `name` interned, and its id. `name` must be valid.
    pub(crate) fn with_topic(&self, name: &str) -> (Self, u32) {
        let mut next = self.clone();
        let id = next.intern(name);
        (next, id)
    }

    /// Interns `name` in place and returns its id.
    pub(crate) fn intern(&mut self, name: &str) -> u32 {
        if let Some(id) = self.topic_id(name) {
            return id;
        }
        let id = u32::try_from(self.routes.len()).expect("fewer than 2^32 interned topics");
        let mut route = Route::new();
        self.resolve(name, |ring| route.push(Arc::clone(ring)));
        self.routes.push(route);
        self.topics.insert(StdArc::from(name), id);
        id
    }

    /// A successor with `entry` added to every route it matches.
    pub(crate) fn with_sub(&self, entry: SubEntry<E>) -> Self {
        let mut next = self.clone();
        for pattern in entry.patterns.iter() {
            next.index.insert(pattern, entry.id);
        }
        for (name, &id) in &next.topics {
            if entry.matches(name) {
                let route = &mut next.routes[id as usize];
                // After every ring of the same or a higher priority.
                let at = route.partition_point(|r| r.priority() >= entry.ring.priority());
                route.insert(at, Arc::clone(&entry.ring));
            }
        }
        // Ids are taken before the rcu, so concurrent subscribes can land
        // out of id order: insert in place to keep `subs` sorted.
        let at = next.subs.partition_point(|e| e.id < entry.id);
        next.subs.insert(at, entry);
        next
    }

    /// A successor without subscription `id`, and its entry; `None` if the
    /// registry does not hold it.
    pub(crate) fn without_sub(&self, id: u64) -> Option<(Self, SubEntry<E>)> {
        let at = self.subs.binary_search_by_key(&id, |e| e.id).ok()?;
        let mut next = self.clone();
        let entry = next.subs.remove(at);
        for pattern in entry.patterns.iter() {
            next.index.remove(pattern, &id);
        }
        for route in &mut next.routes {
            route.retain(|ring| !Arc::ptr_eq(ring, &entry.ring));
        }
        Some((next, entry))
    }

    /// The registry after shutdown: closed, with no routes, keeping its
    /// subscriptions so snapshots still report them.
    pub(crate) fn closed_successor(&self) -> Self {
        let mut next = self.clone();
        next.closed = true;
        for route in &mut next.routes {
            route.clear();
        }
        next
    }
}
