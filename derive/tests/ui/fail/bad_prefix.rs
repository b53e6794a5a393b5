use evbus::Event;

#[derive(Debug, Clone, Event)]
#[event(prefix = "plan.>")]
enum Plan {
    Created,
    Applied,
}

fn main() {}
