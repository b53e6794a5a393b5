//! [`WeakDispatcher`]: a handle that does not keep the dispatcher alive,
//! for handlers that call back into their own dispatcher.

use std::{
    fmt,
    sync::{Arc, Weak},
};

use evbus_core::Event;

use super::{Dispatcher, shutdown::Owner};
use crate::runtime::Runtime;

/// A handle to a [`Dispatcher`] that does not keep it alive, made by
/// [`Dispatcher::downgrade`].
///
/// A handler that holds a [`Dispatcher`] keeps it alive (the dispatcher
/// owns the handler, the handler owns the dispatcher), so dropping every
/// other handle does not shut it down; only [`Dispatcher::shutdown`] does.
/// A handler that holds a `WeakDispatcher` instead, and
/// [`upgrade`](WeakDispatcher::upgrade)s it for the call, lets the last
/// outside handle shut the dispatcher down when it is dropped (as tokio's
/// `WeakSender` lets a channel close).
///
/// ```
/// use evbus_core::{Bus, Event, EventKind};
/// use evbus_dispatch::{Dispatcher, HandlerOptions};
///
/// # #[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// # enum Kind { Tick }
/// # impl EventKind for Kind {
/// #     const ALL: &'static [Self] = &[Kind::Tick];
/// #     fn topic(self) -> &'static str { "tick" }
/// #     fn index(self) -> usize { 0 }
/// # }
/// # #[derive(Debug, Clone)]
/// # struct Tick;
/// # impl Event for Tick {
/// #     type Kind = Kind;
/// #     fn kind(&self) -> Kind { Kind::Tick }
/// # }
/// let bus = Bus::<Tick>::new();
/// let dispatcher = Dispatcher::builder(&bus).workers(1).build()?;
/// let weak = dispatcher.downgrade();
/// dispatcher.register(HandlerOptions::pattern("once", "tick")?, move |_: &Tick| {
///     if let Some(d) = weak.upgrade() {
///         d.disable("once");
///     }
///     Ok(())
/// })?;
/// // Dropping the only strong handle shuts the dispatcher down.
/// drop(dispatcher);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WeakDispatcher<E: Event> {
    rt: Weak<Runtime<E>>,
    owner: Weak<Owner<E>>,
}

impl<E: Event> WeakDispatcher<E> {
    /// A [`Dispatcher`] handle, or `None` once the last one was dropped.
    pub fn upgrade(&self) -> Option<Dispatcher<E>> {
        let owner = self.owner.upgrade()?;
        let rt = self.rt.upgrade()?;
        Some(Dispatcher { rt, owner })
    }
}

impl<E: Event> Clone for WeakDispatcher<E> {
    fn clone(&self) -> Self {
        Self {
            rt: Weak::clone(&self.rt),
            owner: Weak::clone(&self.owner),
        }
    }
}

impl<E: Event> fmt::Debug for WeakDispatcher<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("WeakDispatcher { .. }")
    }
}

impl<E: Event> Dispatcher<E> {
    /// A [`WeakDispatcher`]: a handle for a handler to hold without
    /// keeping the dispatcher alive.
    pub fn downgrade(&self) -> WeakDispatcher<E> {
        WeakDispatcher {
            rt: Arc::downgrade(&self.rt),
            owner: Arc::downgrade(&self.owner),
        }
    }
}
