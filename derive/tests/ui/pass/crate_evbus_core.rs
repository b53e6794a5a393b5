//! Code that depends on evbus-core alone names it with `crate`.
#![deny(warnings)]

use evbus_core::{Bus, Event, EventKind};

#[derive(Debug, Clone, PartialEq, evbus_derive::Event)]
#[event(crate = "evbus_core", prefix = "core")]
enum Core {
    Started,
    Stopped,
}

fn main() {
    assert_eq!(CoreKind::Stopped.topic(), "core.stopped");
    assert_eq!(Core::Started.kind(), CoreKind::Started);
    let bus = Bus::<Core>::new();
    let mut all = bus.subscribe("core.*").unwrap();
    bus.publish(Core::Stopped).unwrap();
    assert_eq!(all.try_recv(), Ok(Core::Stopped));
}
