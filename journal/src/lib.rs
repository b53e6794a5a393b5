//! A durable journal for evbus: record every event of a bus to append-only
//! segment files, then query, tail, resume and replay it.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod replay;
pub mod session;

pub use crate::{
    replay::{
        FilteredBy, Pace, Replay, ReplayClock, ReplayEnd, ReplayError, ReplayReport, ReplayTarget,
        SystemReplayClock,
    },
    session::{
        ReadOptions, SessionError, SessionHeader, SessionReader, SessionWriter, read_session,
        write_session,
    },
};
