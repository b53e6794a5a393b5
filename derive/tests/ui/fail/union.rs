use evbus::Event;

#[derive(Clone, Copy, Event)]
#[event(topic = "raw.bits")]
union Bits {
    int: u64,
    float: f64,
}

fn main() {}
