//! Test support for the evbus workspace, not API: a hostile payload that
//! the adversarial tests of `evbus-nats` and `evbus-webhook` publish, send
//! and bridge to check that a panicking or failing user type is contained.
//!
//! [`Evil`] is an event whose [`Clone`], [`Serialize`], [`Deserialize`] or
//! [`Drop`] panics or fails on demand, as its [`Mode`] says. It is a dev-dependency
//! only; nothing here is stable or meant for users.

use evbus_core::{Envelope, Event, EventKind};
use serde::{Deserialize, Deserializer, Serialize, Serializer, ser::Error as _};

/// The topic every [`Evil`] is published on (its [`EvilKind`]'s topic).
pub const TOPIC: &str = "adv.x";

/// What an [`Evil`] payload does when it is cloned, serialized,
/// deserialized or dropped. Apart from what its mode names, every payload behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Clones, serializes and deserializes like any payload.
    Fine,
    /// `Clone` panics (as the bus clones it for a second subscriber, or a
    /// bridge's local publish does); it serializes fine.
    ClonePanics,
    /// `Serialize` panics.
    SerializePanics,
    /// `Serialize` returns an error ("this payload refuses to serialize").
    SerializeFails,
    /// Serializes fine, but `Deserialize` of what it wrote panics (after
    /// reading it), as on the importing side of a bridge.
    DeserializePanics,
    /// `Drop` panics (unless the thread is already unwinding, where a
    /// second panic would abort the process). Clones, serializes and
    /// deserializes fine, and its clones and decoded copies drop the same
    /// way; a test that receives one calls [`Evil::defuse`] before dropping
    /// it.
    DropPanics,
}

impl Mode {
    /// `bad`'s modes in order, each between two [`Mode::Fine`]: a run that
    /// shows that what follows each failure still goes through. For
    /// `[SerializePanics, ClonePanics]`: `[Fine, SerializePanics, Fine,
    /// ClonePanics, Fine]`.
    pub fn interleaved(bad: &[Mode]) -> Vec<Mode> {
        let mut modes = vec![Mode::Fine];
        for &mode in bad {
            modes.extend([mode, Mode::Fine]);
        }
        modes
    }
}

/// A hostile payload: an event numbered `seq` that misbehaves as `mode`
/// says. It serializes as `{"seq": .., "mode": ..}`.
#[derive(Debug)]
pub struct Evil {
    /// The payload's number, for the tests to tell events apart.
    pub seq: u64,
    /// How it misbehaves.
    pub mode: Mode,
}

impl Evil {
    /// An envelope on [`TOPIC`] holding `Evil { seq, mode }`.
    pub fn envelope(seq: u64, mode: Mode) -> Envelope<Evil> {
        Envelope::on(TOPIC, Evil { seq, mode }).expect("TOPIC is a valid topic")
    }

    /// Makes a [`Mode::DropPanics`] payload drop quietly (its mode becomes
    /// [`Mode::Fine`]); returns the mode it had.
    pub fn defuse(&mut self) -> Mode {
        std::mem::replace(&mut self.mode, Mode::Fine)
    }
}

impl Drop for Evil {
    /// Panics if the mode is [`Mode::DropPanics`] and this thread is not
    /// unwinding already.
    fn drop(&mut self) {
        if self.mode == Mode::DropPanics && !std::thread::panicking() {
            panic!("drop of event {} panics", self.seq);
        }
    }
}

impl Clone for Evil {
    /// Panics if the mode is [`Mode::ClonePanics`].
    fn clone(&self) -> Self {
        assert!(
            self.mode != Mode::ClonePanics,
            "clone of event {} panics",
            self.seq
        );
        Evil {
            seq: self.seq,
            mode: self.mode,
        }
    }
}

impl Serialize for Evil {
    /// Panics for [`Mode::SerializePanics`], fails for
    /// [`Mode::SerializeFails`].
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.mode {
            Mode::SerializePanics => panic!("serialize of event {} panics", self.seq),
            Mode::SerializeFails => Err(S::Error::custom("this payload refuses to serialize")),
            Mode::Fine | Mode::ClonePanics | Mode::DeserializePanics | Mode::DropPanics => {
                use serde::ser::SerializeStruct;
                let mut st = s.serialize_struct("Evil", 2)?;
                st.serialize_field("seq", &self.seq)?;
                st.serialize_field("mode", &self.mode)?;
                st.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Evil {
    /// Panics when what it reads has the mode [`Mode::DeserializePanics`].
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            seq: u64,
            mode: Mode,
        }
        let Raw { seq, mode } = Raw::deserialize(d)?;
        assert!(
            mode != Mode::DeserializePanics,
            "deserialize of event {seq} panics"
        );
        Ok(Evil { seq, mode })
    }
}

/// The one kind of [`Evil`], on [`TOPIC`]. Other test payloads may use it
/// too when their envelopes name their topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvilKind;

impl EventKind for EvilKind {
    const ALL: &'static [Self] = &[EvilKind];
    fn topic(self) -> &'static str {
        TOPIC
    }
    fn index(self) -> usize {
        0
    }
}

impl Event for Evil {
    type Kind = EvilKind;
    fn kind(&self) -> EvilKind {
        EvilKind
    }
}
