//! The kind enum's name and the runtime crate's path can be chosen; the kind
//! enum takes the type's visibility and is documented; generic event types
//! work.
#![deny(warnings, unreachable_pub, missing_docs)]

use std::sync::Arc;

use evbus::{Bus, Event, EventKind};

/// Public events: their generated kind enums must be documented too.
pub mod events {
    use evbus::Event;

    /// A renamed kind enum, through a renamed path to the runtime crate.
    #[derive(Debug, Clone, Event)]
    #[event(prefix = "job", kind = "JobState", crate = "crate::runtime")]
    pub enum Job {
        /// Queued.
        Queued {
            /// The job.
            id: u64,
        },
        /// Done.
        Done {
            /// The job.
            id: u64,
        },
    }

    /// Visible in this module and its parent only, like its kind enum.
    #[derive(Debug, Clone, Event)]
    #[event(topic = "internal.tick")]
    pub(crate) struct Tick;
}

/// The runtime crate under another path, as `#[event(crate = "..")]` takes it.
mod runtime {
    pub(crate) use evbus::{Event, EventKind};
}

/// A generic event: the payload is shared, the kinds are not generic.
#[derive(Debug, Event)]
#[event(prefix = "blob")]
enum Blob<T>
where
    T: Send + Sync + 'static,
{
    Stored(Arc<T>),
    Deleted,
}

// By hand, so that `T` need not be `Clone`: the payload is shared.
impl<T: Send + Sync + 'static> Clone for Blob<T> {
    fn clone(&self) -> Self {
        match self {
            Blob::Stored(payload) => Blob::Stored(Arc::clone(payload)),
            Blob::Deleted => Blob::Deleted,
        }
    }
}

fn main() {
    use events::{Job, JobState, Tick, TickKind};

    assert_eq!(JobState::ALL, [JobState::Queued, JobState::Done]);
    assert_eq!(Job::Done { id: 1 }.kind().topic(), "job.done");
    assert_eq!(Tick.kind(), TickKind::Tick);

    let bus = Bus::<Blob<Vec<u8>>>::new();
    let mut stored = bus.subscribe_kinds(&[BlobKind::Stored]).unwrap();
    bus.publish(Blob::Stored(Arc::new(vec![1, 2, 3]))).unwrap();
    bus.publish(Blob::Deleted).unwrap();
    match stored.try_recv() {
        Ok(Blob::Stored(bytes)) => assert_eq!(*bytes, [1, 2, 3]),
        other => panic!("expected the stored blob, got {other:?}"),
    }
    assert!(stored.try_recv().is_err());
}
