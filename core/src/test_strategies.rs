//! Proptest strategies shared by the topic-routing tests (`index`,
//! `registry`): patterns and topics over a three-letter alphabet, so that
//! generated patterns often match generated topics; and the configuration
//! of every property test of the persistent structures.

use proptest::prelude::*;

/// A pattern of 1 to `max_segments` segments from `a`, `b`, `c` and `*`,
/// the last one replaced by `>` half of the time.
pub(crate) fn pattern_strategy(max_segments: usize) -> impl Strategy<Value = String> {
    let segment = prop_oneof![Just("a"), Just("b"), Just("c"), Just("*")];
    (
        prop::collection::vec(segment, 1..=max_segments),
        any::<bool>(),
    )
        .prop_map(|(mut segments, tail)| {
            if tail {
                if let Some(last) = segments.last_mut() {
                    *last = ">";
                }
            }
            segments.join(".")
        })
}

/// A topic of 1 to `max_segments` segments from `a`, `b` and `c`.
pub(crate) fn topic_strategy(max_segments: usize) -> impl Strategy<Value = String> {
    let segment = prop_oneof![Just("a"), Just("b"), Just("c")];
    prop::collection::vec(segment, 1..=max_segments).prop_map(|segments| segments.join("."))
}

/// The configuration of the property tests of the persistent structures:
/// 256 cases, or 2 under Miri, where each persistent update is slow; no
/// regression files, since Miri's isolation forbids file access.
pub(crate) fn config() -> ProptestConfig {
    ProptestConfig {
        cases: if cfg!(miri) { 2 } else { 256 },
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}
