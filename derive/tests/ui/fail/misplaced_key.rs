use evbus::Event;

// `topic` belongs on each variant of an enum; `prefix` on the enum.
#[derive(Debug, Clone, Event)]
#[event(topic = "plan.created")]
enum Plan {
    #[event(prefix = "plan")]
    Created,
}

fn main() {}
