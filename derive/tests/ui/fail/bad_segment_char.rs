use evbus::Event;

#[derive(Debug, Clone, Event)]
enum Order {
    #[event(topic = "orders.pl@ced")]
    Placed { id: u64 },
}

fn main() {}
