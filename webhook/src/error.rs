//! Errors of the deliverer.

use crate::endpoint::EndpointError;

/// What can go wrong building or driving a deliverer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An endpoint's configuration was refused.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// No endpoint has this name.
    #[error("no endpoint named {0:?}")]
    UnknownEndpoint(String),
    /// The payload did not serialize to JSON.
    #[error("payload does not serialize: {0}")]
    Serialize(String),
    /// The journal failed (the deliverer stops recording after the first
    /// failure; flushes report it).
    #[error("journal: {0}")]
    Journal(String),
    /// Building the HTTP client or a thread failed.
    #[error("i/o: {0}")]
    Io(String),
    /// No tokio runtime to run on.
    #[error("no tokio runtime: build the deliverer inside one or give it a handle")]
    NoRuntime,
    /// The deliverer was shut down.
    #[error("the deliverer is shut down")]
    Closed,
}
