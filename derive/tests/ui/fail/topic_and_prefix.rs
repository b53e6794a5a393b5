use evbus::Event;

#[derive(Debug, Clone, Event)]
#[event(topic = "system.heartbeat", prefix = "system")]
struct Heartbeat;

fn main() {}
