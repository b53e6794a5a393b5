use evbus::Event;

#[derive(Debug, Clone, Event)]
enum Order {
    #[event(topic = "orders.placed")]
    Placed { id: u64 },
    Paid { id: u64 },
}

fn main() {}
