//! Model of the journal's history/live boundary (`evbus-journal`,
//! `history.rs`): `subscribe_with_history` returns recorded events, then
//! live ones, with no gap and no duplicate.
//!
//! The journal crate itself is not loom-aware (files, std threads), so the
//! model keeps the protocol and swaps the parts around it: the journal is a
//! `Vec` behind a mutex, the live bus is the real (loom-modelled) core bus,
//! and the gate is a loom mutex around the boundary, as in `Live<T>`:
//!
//! - recorder: append a batch to the journal, then, holding the gate,
//!   publish the batch on the live bus (only if someone subscribed) and set
//!   the boundary to the journal's length;
//! - consumer: holding the gate, subscribe to the live bus and read the
//!   boundary `b`; then read the history, `journal[..b]`.
//!
//! Property: history ++ live == every recorded event, in order, each once.
//!
//! The weakened model reads the boundary without the gate (the journal's
//! length after subscribing): loom finds a batch that is both in the
//! history and live.
#![cfg(evbus_loom)]

use evbus_core::{Bus, Overflow};
use evbus_loom_tests::{Ev, bus, drain_closed, subscribe};
use loom::{
    sync::{Arc, Mutex},
    thread,
};

struct Model {
    journal: Mutex<Vec<u64>>,
    gate: Mutex<u64>,
    live: Bus<Ev>,
}

impl Model {
    fn new() -> Arc<Model> {
        Arc::new(Model {
            journal: Mutex::new(Vec::new()),
            gate: Mutex::new(0),
            live: bus(),
        })
    }

    /// The recorder thread's step for one batch (`recorder.rs` `run`, then
    /// `Live::publish`).
    fn record(&self, batch: &[u64]) {
        let next = {
            let mut j = self.journal.lock().unwrap();
            j.extend_from_slice(batch);
            j.len() as u64
        };
        let mut gate = self.gate.lock().unwrap();
        if self.live.subscriber_count() > 0 {
            for &id in batch {
                let _ = self.live.publish(Ev(Arc::new(id)));
            }
        }
        *gate = next;
    }

    fn history(&self, below: u64) -> Vec<u64> {
        self.journal.lock().unwrap()[..below as usize].to_vec()
    }
}

/// Runs the recorder (batches `[0]`, `[1, 2]`) against one consumer that
/// subscribes with history from the start; `gated` picks the real protocol
/// or the weakened one.
fn boundary(gated: bool) {
    loom::model(move || {
        let m = Model::new();
        let recorder = {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                m.record(&[0]);
                m.record(&[1, 2]);
            })
        };
        let (mut sub, b) = if gated {
            let gate = m.gate.lock().unwrap();
            let sub = subscribe(&m.live, 4, Overflow::DropNewest);
            (sub, *gate)
        } else {
            let sub = subscribe(&m.live, 4, Overflow::DropNewest);
            let b = m.journal.lock().unwrap().len() as u64;
            (sub, b)
        };
        let mut seen = m.history(b);
        recorder.join().unwrap();
        m.live.shutdown();
        seen.extend(drain_closed(&mut sub));
        assert_eq!(seen, [0, 1, 2], "history then live (boundary {b})");
    });
}

/// The gate orders every batch's publication wholly before or after the
/// subscription, and the boundary says which: no gap, no duplicate.
#[test]
fn history_then_live_has_no_gap_and_no_duplicate() {
    boundary(true);
}

/// Without the gate, a batch recorded before the boundary is read but
/// published after the subscription comes twice.
#[test]
#[should_panic(expected = "history then live")]
fn without_the_gate_a_batch_comes_twice() {
    boundary(false);
}
