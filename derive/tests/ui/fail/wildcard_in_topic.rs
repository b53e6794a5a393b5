use evbus::Event;

#[derive(Debug, Clone, Event)]
#[event(topic = "orders.*")]
struct AnyOrder {
    id: u64,
}

fn main() {}
