//! A durable journal for evbus: record every event of a bus to append-only
//! segment files, then query, tail, resume and replay it.
#![warn(missing_docs)]
#![deny(unsafe_code)]
