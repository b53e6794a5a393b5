use evbus::Event;

#[derive(Debug, Clone, Event)]
enum Order {
    #[event(topic = "orders.placed", priority = "high")]
    Placed { id: u64 },
}

fn main() {}
