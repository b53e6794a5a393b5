//! Topics from the enum's prefix and the variant's name in snake case; a
//! variant's own topic wins. Variants of every shape.
#![deny(warnings)]

use evbus::{Event, EventKind};

#[derive(Debug, Clone, Event)]
#[event(prefix = "plan")]
enum Plan {
    Created,
    PhaseChanged { phase: u8 },
    StateChanged(u8, u8),
    HTTPRequestSent,
    Retry2Later,
    #[event(topic = "audit.plan.cancelled")]
    Cancelled,
}

fn main() {
    let topics: Vec<&str> = PlanKind::ALL.iter().map(|kind| kind.topic()).collect();
    assert_eq!(
        topics,
        [
            "plan.created",
            "plan.phase_changed",
            "plan.state_changed",
            "plan.http_request_sent",
            "plan.retry2_later",
            "audit.plan.cancelled",
        ]
    );
    assert_eq!(Plan::StateChanged(1, 2).kind(), PlanKind::StateChanged);
    assert_eq!(Plan::PhaseChanged { phase: 3 }.kind(), PlanKind::PhaseChanged);
    assert_eq!(Plan::Created.kind().topic(), "plan.created");
    assert_eq!(Plan::Cancelled.kind().index(), 5);
}
