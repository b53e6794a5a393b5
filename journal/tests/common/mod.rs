//! Shared test types: a payload with a kind, and envelope builders.
#![allow(dead_code, unreachable_pub)]

use evbus_core::{Envelope, Event, EventKind};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Placed,
    Shipped,
}

impl EventKind for Kind {
    const ALL: &'static [Self] = &[Kind::Placed, Kind::Shipped];
    fn topic(self) -> &'static str {
        match self {
            Kind::Placed => "orders.placed",
            Kind::Shipped => "orders.shipped",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub shipped: bool,
    pub n: u64,
    pub note: String,
}

impl Event for Order {
    type Kind = Kind;
    fn kind(&self) -> Kind {
        if self.shipped {
            Kind::Shipped
        } else {
            Kind::Placed
        }
    }
}

pub fn order(n: u64) -> Envelope<Order> {
    Envelope::new(Order {
        shipped: n % 2 == 1,
        n,
        note: format!("order {n}"),
    })
}

/// xorshift64*: a tiny deterministic generator, so a failing round can be
/// replayed from its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (`0..1` for `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
