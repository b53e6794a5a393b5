// The kind enum has the visibility of the type it is derived for.
mod events {
    use evbus::Event;

    #[derive(Debug, Clone, Event)]
    #[event(topic = "internal.tick")]
    struct Tick;

    pub fn tick() -> impl Sized {
        Tick
    }
}

fn main() {
    let _ = events::tick();
    let _ = events::TickKind::Tick;
}
