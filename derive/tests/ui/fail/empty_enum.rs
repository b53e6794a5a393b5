use evbus::Event;

#[derive(Debug, Clone, Event)]
#[event(prefix = "never")]
enum Never {}

fn main() {}
