//! Why a dispatcher could not start, a handler could not be registered, or
//! a wait for the handlers to settle timed out.

use std::{fmt, io};

use evbus_core::SubscribeError;

/// Why a dispatcher could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// `workers(0)`: nothing would run the handlers.
    ZeroWorkers,
    /// A thread could not be spawned.
    Spawn(io::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroWorkers => f.write_str("a dispatcher needs at least one worker"),
            Self::Spawn(e) => write!(f, "could not spawn a dispatcher thread: {e}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Spawn(e) => Some(e),
            Self::ZeroWorkers => None,
        }
    }
}

/// Why a handler or watchdog could not be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegisterError {
    /// A handler of that name exists.
    DuplicateName(String),
    /// The name is empty.
    EmptyName,
    /// The subscription failed (bad capacity, empty filter, closed bus).
    Subscribe(SubscribeError),
    /// The depth-alarm fraction is not in `(0, 1]`.
    InvalidDepthAlarm(String),
    /// A stall watchdog's period is zero.
    ZeroStallPeriod,
    /// The dispatcher is shutting down.
    ShutDown,
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DuplicateName(n) => write!(f, "a handler named {n:?} is already registered"),
            Self::EmptyName => f.write_str("a handler needs a non-empty name"),
            Self::Subscribe(e) => write!(f, "could not subscribe the handler: {e}"),
            Self::InvalidDepthAlarm(x) => {
                write!(f, "depth alarm fraction must be within (0, 1], got {x}")
            }
            Self::ZeroStallPeriod => f.write_str("a stall watchdog needs a period above zero"),
            Self::ShutDown => f.write_str("the dispatcher is shut down"),
        }
    }
}

impl std::error::Error for RegisterError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Subscribe(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SubscribeError> for RegisterError {
    fn from(e: SubscribeError) -> Self {
        match e {
            SubscribeError::Closed => Self::ShutDown,
            other => Self::Subscribe(other),
        }
    }
}

/// [`Dispatcher::wait_settled`](crate::Dispatcher::wait_settled) timed out:
/// the handlers that had not settled at the deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SettleTimeout {
    /// Handlers running, or with events buffered in their rings or put
    /// back for a better handler.
    pub busy: Vec<String>,
    /// Handlers whose pending event waits for a retry timer (their later
    /// events wait in their rings).
    pub retrying: Vec<String>,
}

impl fmt::Display for SettleTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "handlers did not settle before the timeout")?;
        if !self.busy.is_empty() {
            write!(f, "; busy: {}", self.busy.join(", "))?;
        }
        if !self.retrying.is_empty() {
            write!(f, "; waiting for a retry: {}", self.retrying.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for SettleTimeout {}
