//! Envelopes: an event with its identity, time, topic and correlation.
//!
//! The [`Envelope`] type and its parts.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use smallvec::SmallVec;

use crate::{
    kind::{Event, EventKind},
    topic::{TopicError, validate_topic},
};

/// A time-ordered, unique event id: a UUIDv7.
///
/// Ids made in one process are strictly increasing (the `uuid` crate keeps a
/// counter within a millisecond), and ids from different processes sort by
/// their millisecond. With the `serde` feature an id is a hyphenated string in
/// human-readable formats (JSON) and 16 bytes in binary ones.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct EventId(uuid::Uuid);

impl EventId {
    /// A new id, later than every id this process made before.
    pub fn new() -> Self {
        EventId(uuid::Uuid::now_v7())
    }

    /// The id with these 16 bytes (big-endian, as in RFC 9562).
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        EventId(uuid::Uuid::from_bytes(bytes))
    }

    /// The id's 16 bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// The id's millisecond (Unix time), for a UUIDv7; `None` for an id of
    /// another version, such as one parsed from elsewhere.
    pub fn millis(&self) -> Option<u64> {
        let (secs, nanos) = self.0.get_timestamp()?.to_unix();
        Some(secs * 1000 + u64::from(nanos) / 1_000_000)
    }
}

impl Default for EventId {
    fn default() -> Self {
        EventId::new()
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", self.0.hyphenated())
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl std::str::FromStr for EventId {
    type Err = ParseEventIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s)
            .map(EventId)
            .map_err(|_| ParseEventIdError { input_len: s.len() })
    }
}

/// The error of parsing an [`EventId`]: the text is not a UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseEventIdError {
    input_len: usize,
}

impl fmt::Display for ParseEventIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not an event id: expected a UUID such as 01890a5d-ac96-774b-bcce-b302099a8057 \
             ({} bytes given)",
            self.input_len
        )
    }
}

impl std::error::Error for ParseEventIdError {}

/// A wall-clock time: nanoseconds since the Unix epoch.
///
/// 64 bits of nanoseconds reach the year 2554. A time before the epoch is
/// clamped to it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// The current wall-clock time.
    pub fn now() -> Self {
        Timestamp::from_system_time(SystemTime::now())
    }

    /// This time, saturated to the representable range.
    pub fn from_system_time(time: SystemTime) -> Self {
        let nanos = time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Timestamp(nanos)
    }

    /// The time `nanos` nanoseconds after the Unix epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Timestamp(nanos)
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// As a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.0)
    }

    /// How long after `earlier` this time is; zero if it is not later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Timestamp({}.{:09})",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

/// Set on an event that a replay published rather than its first publisher.
///
/// Handlers read it through [`Event::replay_mark`]. In a dry run
/// (`dry_run == true`) a handler must not cause outbound effects (send mail,
/// call a webhook, write to another system); the dispatcher can skip such
/// handlers for it, and counts replayed events apart from live ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ReplayMark {
    /// The replay must not cause effects outside the process.
    pub dry_run: bool,
    /// The sequence number the event had where it was recorded (a journal
    /// or a session file).
    pub recorded_seq: u64,
}

/// The metadata of an [`Envelope`]: everything but the payload.
///
/// Shared behind an `Arc` by every clone of the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    id: EventId,
    time: Timestamp,
    topic: Arc<str>,
    correlation_id: EventId,
    causation_id: Option<EventId>,
    session_id: Option<Arc<str>>,
    source: Option<Arc<str>>,
    tenant: Option<Arc<str>>,
    tags: SmallVec<[Arc<str>; 4]>,
    idempotency_key: Option<Arc<str>>,
    replay: Option<ReplayMark>,
}

/// An event with its identity, time, topic and correlation.
///
/// An `Envelope<T>` wraps a payload `T` with what a system needs to follow
/// one request through many events: a time-ordered unique [`EventId`]
/// (UUIDv7), the [`Timestamp`] it was made at, its topic, the correlation id
/// shared by every event of one request, the causation id of the event that
/// caused it, and optional session, source, tenant, tags and idempotency key.
///
/// The metadata sits behind one `Arc`, so fanning an envelope out to K
/// subscribers costs K reference-count increments plus K clones of `T`.
///
/// Fields that a domain taxonomy needs (a plan id, an actor, a project) belong
/// in the payload, typed, not in ad-hoc strings here:
///
/// ```
/// # #![cfg_attr(miri, allow(unused))]
/// use evbus::{Envelope, Event, EventKind};
///
/// #[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// enum Kind { Started, Finished }
/// impl EventKind for Kind {
///     const ALL: &'static [Self] = &[Kind::Started, Kind::Finished];
///     fn topic(self) -> &'static str {
///         match self { Kind::Started => "plan.started", Kind::Finished => "plan.finished" }
///     }
///     fn index(self) -> usize { self as usize }
/// }
///
/// #[derive(Debug, Clone)]
/// enum Plan { Started { plan_id: u64, actor: String }, Finished { plan_id: u64 } }
/// impl Event for Plan {
///     type Kind = Kind;
///     fn kind(&self) -> Kind {
///         match self { Plan::Started { .. } => Kind::Started, Plan::Finished { .. } => Kind::Finished }
///     }
/// }
///
/// # #[cfg(not(miri))] { // Miri's isolation has no wall clock.
/// let root = Envelope::new(Plan::Started { plan_id: 7, actor: "ada".into() })
///     .with_session("s-1")
///     .with_tenant("acme");
/// let child = root.caused(Plan::Finished { plan_id: 7 });
/// assert_eq!(child.topic(), "plan.finished");
/// assert_eq!(child.correlation_id(), root.correlation_id());
/// assert_eq!(child.causation_id(), Some(root.id()));
/// assert_eq!(child.tenant(), Some("acme"));
/// assert!(child.id() > root.id());
/// assert!(matches!(root.payload(), Plan::Started { plan_id: 7, actor } if actor == "ada"));
/// assert!(matches!(child.payload(), Plan::Finished { plan_id: 7 }));
/// # }
/// ```
///
/// `Envelope<T>` is an [`Event`] when `T` is, with `T`'s kind, so a
/// `Bus<Envelope<T>>` routes it exactly as it would route the payload.
///
/// With the `serde` feature, an envelope serializes as one flat record:
/// `id`, `time`, `topic`, `correlation_id`, `causation_id`, `session_id`,
/// `source`, `tenant`, `tags`, `idempotency_key`, `replay` and `payload`.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope<T> {
    meta: Arc<Metadata>,
    payload: T,
}

impl<T: Event> Envelope<T> {
    /// A root envelope for `payload`, on its kind's topic: a new id, the
    /// current time, and a correlation id equal to its own id.
    pub fn new(payload: T) -> Self {
        let topic = payload.kind().topic();
        Envelope::with_meta(Arc::from(topic), payload)
    }

    /// A child of this envelope, for the event it caused: a new id and time,
    /// on `payload`'s kind's topic, with this envelope's correlation id,
    /// session, source and tenant, and this envelope's id as its causation id.
    /// Tags, the idempotency key and a replay mark are not inherited.
    pub fn caused<U: Event>(&self, payload: U) -> Envelope<U> {
        let topic = payload.kind().topic();
        self.child(Arc::from(topic), payload)
    }
}

impl<T> Envelope<T> {
    /// A root envelope for `payload` on `topic`, which must be a valid topic
    /// (see [`validate_topic`]).
    pub fn on(topic: &str, payload: T) -> Result<Self, TopicError> {
        validate_topic(topic)?;
        Ok(Envelope::with_meta(Arc::from(topic), payload))
    }

    /// A child of this envelope on `topic` (see [`Envelope::caused`]).
    pub fn caused_on<U>(&self, topic: &str, payload: U) -> Result<Envelope<U>, TopicError> {
        validate_topic(topic)?;
        Ok(self.child(Arc::from(topic), payload))
    }

    fn with_meta(topic: Arc<str>, payload: T) -> Self {
        let id = EventId::new();
        Envelope {
            meta: Arc::new(Metadata {
                id,
                time: Timestamp::now(),
                topic,
                correlation_id: id,
                causation_id: None,
                session_id: None,
                source: None,
                tenant: None,
                tags: SmallVec::new(),
                idempotency_key: None,
                replay: None,
            }),
            payload,
        }
    }

    fn child<U>(&self, topic: Arc<str>, payload: U) -> Envelope<U> {
        let parent = &*self.meta;
        Envelope {
            meta: Arc::new(Metadata {
                id: EventId::new(),
                time: Timestamp::now(),
                topic,
                correlation_id: parent.correlation_id,
                causation_id: Some(parent.id),
                session_id: parent.session_id.clone(),
                source: parent.source.clone(),
                tenant: parent.tenant.clone(),
                tags: SmallVec::new(),
                idempotency_key: None,
                replay: None,
            }),
            payload,
        }
    }

    fn meta_mut(&mut self) -> &mut Metadata {
        Arc::make_mut(&mut self.meta)
    }

    /// Sets the correlation id (to join a request that started elsewhere).
    #[must_use]
    pub fn with_correlation_id(mut self, id: EventId) -> Self {
        self.meta_mut().correlation_id = id;
        self
    }

    /// Sets the causation id.
    #[must_use]
    pub fn with_causation_id(mut self, id: EventId) -> Self {
        self.meta_mut().causation_id = Some(id);
        self
    }

    /// Sets the session id.
    #[must_use]
    pub fn with_session(mut self, session_id: &str) -> Self {
        self.meta_mut().session_id = Some(Arc::from(session_id));
        self
    }

    /// Sets the source (the service or component that made the event).
    #[must_use]
    pub fn with_source(mut self, source: &str) -> Self {
        self.meta_mut().source = Some(Arc::from(source));
        self
    }

    /// Sets the tenant.
    #[must_use]
    pub fn with_tenant(mut self, tenant: &str) -> Self {
        self.meta_mut().tenant = Some(Arc::from(tenant));
        self
    }

    /// Adds a tag, unless the envelope has it already.
    #[must_use]
    pub fn with_tag(mut self, tag: &str) -> Self {
        if !self.has_tag(tag) {
            self.meta_mut().tags.push(Arc::from(tag));
        }
        self
    }

    /// Sets the idempotency key: a journal appends at most one record per
    /// key within its deduplication window.
    #[must_use]
    pub fn with_idempotency_key(mut self, key: &str) -> Self {
        self.meta_mut().idempotency_key = Some(Arc::from(key));
        self
    }

    /// Sets the time (for events made from a record of the past).
    #[must_use]
    pub fn with_time(mut self, time: Timestamp) -> Self {
        self.meta_mut().time = time;
        self
    }

    /// Sets the id (for events made from a record of the past).
    #[must_use]
    pub fn with_id(mut self, id: EventId) -> Self {
        self.meta_mut().id = id;
        self
    }

    /// Marks the envelope as published by a replay (`None` clears the mark).
    #[must_use]
    pub fn with_replay_mark(mut self, mark: Option<ReplayMark>) -> Self {
        self.meta_mut().replay = mark;
        self
    }

    /// The unique, time-ordered id.
    pub fn id(&self) -> EventId {
        self.meta.id
    }

    /// When the envelope was made.
    pub fn time(&self) -> Timestamp {
        self.meta.time
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.meta.topic
    }

    /// The id shared by every event of one request: the root's own id, unless
    /// set.
    pub fn correlation_id(&self) -> EventId {
        self.meta.correlation_id
    }

    /// The id of the event that caused this one, if any.
    pub fn causation_id(&self) -> Option<EventId> {
        self.meta.causation_id
    }

    /// The session id, if any.
    pub fn session_id(&self) -> Option<&str> {
        self.meta.session_id.as_deref()
    }

    /// The source, if any.
    pub fn source(&self) -> Option<&str> {
        self.meta.source.as_deref()
    }

    /// The tenant, if any.
    pub fn tenant(&self) -> Option<&str> {
        self.meta.tenant.as_deref()
    }

    /// The tags, in the order they were added.
    pub fn tags(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.meta.tags.iter().map(|t| &**t)
    }

    /// Whether the envelope has this tag.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.meta.tags.iter().any(|t| &**t == tag)
    }

    /// The idempotency key, if any.
    pub fn idempotency_key(&self) -> Option<&str> {
        self.meta.idempotency_key.as_deref()
    }

    /// The replay mark, if a replay published this envelope.
    pub fn replay(&self) -> Option<ReplayMark> {
        self.meta.replay
    }

    /// The payload.
    pub fn payload(&self) -> &T {
        &self.payload
    }

    /// The payload, mutably.
    pub fn payload_mut(&mut self) -> &mut T {
        &mut self.payload
    }

    /// The payload, without the envelope.
    pub fn into_payload(self) -> T {
        self.payload
    }

    /// The same metadata around another payload.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Envelope<U> {
        Envelope {
            meta: self.meta,
            payload: f(self.payload),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Envelope<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &*self.meta;
        let mut d = f.debug_struct("Envelope");
        d.field("id", &m.id)
            .field("time", &m.time)
            .field("topic", &&*m.topic)
            .field("correlation_id", &m.correlation_id);
        if let Some(c) = &m.causation_id {
            d.field("causation_id", c);
        }
        for (name, value) in [
            ("session_id", &m.session_id),
            ("source", &m.source),
            ("tenant", &m.tenant),
            ("idempotency_key", &m.idempotency_key),
        ] {
            if let Some(v) = value {
                d.field(name, &&**v);
            }
        }
        if !m.tags.is_empty() {
            d.field("tags", &m.tags);
        }
        if let Some(r) = &m.replay {
            d.field("replay", r);
        }
        d.field("payload", &self.payload).finish()
    }
}

impl<T: Event> Event for Envelope<T> {
    type Kind = T::Kind;

    #[inline]
    fn kind(&self) -> T::Kind {
        self.payload.kind()
    }

    #[inline]
    fn replay_mark(&self) -> Option<ReplayMark> {
        self.meta.replay
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    //! One flat record, through borrowed and owned mirrors of the fields, so
    //! it works with non-self-describing codecs (no `#[serde(flatten)]`).

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::*;

    #[derive(Serialize)]
    struct Flat<'a, T> {
        id: EventId,
        time: Timestamp,
        topic: &'a str,
        correlation_id: EventId,
        causation_id: Option<EventId>,
        session_id: Option<&'a str>,
        source: Option<&'a str>,
        tenant: Option<&'a str>,
        tags: Tags<'a>,
        idempotency_key: Option<&'a str>,
        replay: Option<ReplayMark>,
        payload: &'a T,
    }

    /// The tags as a sequence of strings.
    struct Tags<'a>(&'a [Arc<str>]);

    impl Serialize for Tags<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq(self.0.iter().map(|t| &**t))
        }
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Owned<T> {
        id: EventId,
        time: Timestamp,
        topic: String,
        correlation_id: EventId,
        #[serde(default)]
        causation_id: Option<EventId>,
        #[serde(default)]
        session_id: Option<String>,
        #[serde(default)]
        source: Option<String>,
        #[serde(default)]
        tenant: Option<String>,
        #[serde(default)]
        tags: Vec<String>,
        #[serde(default)]
        idempotency_key: Option<String>,
        #[serde(default)]
        replay: Option<ReplayMark>,
        payload: T,
    }

    impl<T: Serialize> Serialize for Envelope<T> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let m = &*self.meta;
            Flat {
                id: m.id,
                time: m.time,
                topic: &m.topic,
                correlation_id: m.correlation_id,
                causation_id: m.causation_id,
                session_id: m.session_id.as_deref(),
                source: m.source.as_deref(),
                tenant: m.tenant.as_deref(),
                tags: Tags(&m.tags),
                idempotency_key: m.idempotency_key.as_deref(),
                replay: m.replay,
                payload: &self.payload,
            }
            .serialize(serializer)
        }
    }

    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Envelope<T> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let o = Owned::<T>::deserialize(deserializer)?;
            // A stored topic must still be a topic: a session file edited
            // by hand gets a typed error here, not a bus that panics later.
            validate_topic(&o.topic).map_err(serde::de::Error::custom)?;
            let arc = |s: Option<String>| s.map(Arc::<str>::from);
            Ok(Envelope {
                meta: Arc::new(Metadata {
                    id: o.id,
                    time: o.time,
                    topic: Arc::from(o.topic),
                    correlation_id: o.correlation_id,
                    causation_id: o.causation_id,
                    session_id: arc(o.session_id),
                    source: arc(o.source),
                    tenant: arc(o.tenant),
                    tags: o.tags.into_iter().map(Arc::from).collect(),
                    idempotency_key: arc(o.idempotency_key),
                    replay: o.replay,
                }),
                payload: o.payload,
            })
        }
    }
}

// Not under Miri: its isolation has no wall clock, and nothing here is unsafe.
#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
    enum K {
        A,
        B,
    }
    impl EventKind for K {
        const ALL: &'static [Self] = &[K::A, K::B];
        fn topic(self) -> &'static str {
            match self {
                K::A => "t.a",
                K::B => "t.b",
            }
        }
        fn index(self) -> usize {
            self as usize
        }
    }
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
    struct P(K, u32);
    impl Event for P {
        type Kind = K;
        fn kind(&self) -> K {
            self.0
        }
    }

    #[test]
    fn ids_increase_within_a_process() {
        let mut last = EventId::new();
        for _ in 0..10_000 {
            let next = EventId::new();
            assert!(next > last);
            last = next;
        }
        assert!(last.millis().is_some());
    }

    #[test]
    fn id_round_trips_through_text() {
        let id = EventId::new();
        assert_eq!(id.to_string().parse::<EventId>(), Ok(id));
        assert!("nope".parse::<EventId>().is_err());
    }

    #[test]
    fn a_child_keeps_the_request_and_names_its_cause() {
        let root = Envelope::new(P(K::A, 1))
            .with_session("s")
            .with_source("svc")
            .with_tenant("t1")
            .with_tag("x")
            .with_idempotency_key("k");
        assert_eq!(root.correlation_id(), root.id());
        let child = root.caused(P(K::B, 2));
        assert_eq!(child.topic(), "t.b");
        assert_eq!(child.correlation_id(), root.id());
        assert_eq!(child.causation_id(), Some(root.id()));
        assert_eq!(
            (child.session_id(), child.source(), child.tenant()),
            (Some("s"), Some("svc"), Some("t1"))
        );
        assert_eq!(child.tags().len(), 0);
        assert_eq!(child.idempotency_key(), None);
        let grandchild = child.caused(P(K::A, 3));
        assert_eq!(grandchild.correlation_id(), root.id());
        assert_eq!(grandchild.causation_id(), Some(child.id()));
    }

    #[test]
    fn a_clone_shares_its_metadata_and_an_edit_does_not_leak() {
        let a = Envelope::new(P(K::A, 1)).with_tag("x").with_tag("x");
        assert_eq!(a.tags().collect::<Vec<_>>(), ["x"]);
        let b = a.clone().with_tenant("t");
        assert_eq!(a.tenant(), None);
        assert_eq!(b.tenant(), Some("t"));
        assert_eq!(a.id(), b.id());
    }

    #[test]
    fn the_kind_and_the_replay_mark_come_through_event() {
        let e = Envelope::new(P(K::B, 1));
        assert_eq!(e.kind(), K::B);
        assert_eq!(Event::replay_mark(&e), None);
        let mark = ReplayMark {
            dry_run: true,
            recorded_seq: 9,
        };
        let e = e.with_replay_mark(Some(mark));
        assert_eq!(Event::replay_mark(&e), Some(mark));
        assert_eq!(Event::replay_mark(e.payload()), None);
    }

    #[test]
    fn a_bad_topic_is_a_typed_error() {
        assert!(Envelope::on("a..b", 1u8).is_err());
        assert!(Envelope::on("a.*", 1u8).is_err());
        let ok = Envelope::on("a.b", 1u8).unwrap();
        assert!(ok.caused_on("", 2u8).is_err());
    }

    #[test]
    fn timestamps_saturate() {
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(Timestamp::from_system_time(before), Timestamp::EPOCH);
        let t = Timestamp::from_nanos(5);
        assert_eq!(
            t.saturating_duration_since(Timestamp::from_nanos(9)),
            Duration::ZERO
        );
        assert_eq!(t.to_system_time(), UNIX_EPOCH + Duration::from_nanos(5));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn json_is_one_flat_record_and_round_trips() {
        let e = Envelope::new(P(K::A, 4))
            .with_tenant("acme")
            .with_tag("a")
            .with_tag("b")
            .with_replay_mark(Some(ReplayMark {
                dry_run: false,
                recorded_seq: 3,
            }));
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["topic"], "t.a");
        assert_eq!(json["tenant"], "acme");
        assert_eq!(json["tags"], serde_json::json!(["a", "b"]));
        assert_eq!(json["id"], e.id().to_string());
        let back: Envelope<P> = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn json_with_a_bad_topic_or_field_is_an_error() {
        let e = Envelope::new(P(K::A, 4));
        let mut json = serde_json::to_value(&e).unwrap();
        json["topic"] = "a..b".into();
        assert!(serde_json::from_value::<Envelope<P>>(json.clone()).is_err());
        json["topic"] = "a.b".into();
        json["surprise"] = 1.into();
        assert!(serde_json::from_value::<Envelope<P>>(json).is_err());
    }
}
