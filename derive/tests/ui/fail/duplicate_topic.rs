use evbus::Event;

#[derive(Debug, Clone, Event)]
#[event(prefix = "orders")]
enum Order {
    Placed { id: u64 },
    // Collides with the topic the prefix gives `Placed`.
    #[event(topic = "orders.placed")]
    Replaced { id: u64 },
}

fn main() {}
