//! Signed webhooks for evbus.
//!
//! The [`sign`] module signs and verifies requests per the Standard
//! Webhooks specification.
#![warn(missing_docs)]
#![deny(unsafe_code)]
#![doc(test(no_crate_inject, attr(deny(warnings))))]

pub mod sign;

pub use crate::sign::{Secret, SecretError, Verifier, VerifyError};
