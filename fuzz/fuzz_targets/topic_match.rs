//! Fuzzes topic validation, pattern parsing and matching against naive
//! reference implementations.
//!
//! Input: `pattern 0xFF topic` (split at the first 0xFF byte, or at the
//! midpoint when there is none); both halves are decoded lossily as UTF-8.

#![no_main]

use evbus_core::topic::{MAX_SEGMENTS, MAX_TOPIC_LEN, Pattern, validate_topic};
use libfuzzer_sys::fuzz_target;

fn naive_segment_ok(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn naive_topic_ok(topic: &str) -> bool {
    let segments: Vec<&str> = topic.split('.').collect();
    !topic.is_empty()
        && topic.len() <= MAX_TOPIC_LEN
        && segments.len() <= MAX_SEGMENTS
        && segments.iter().all(|s| naive_segment_ok(s))
}

fn naive_pattern_ok(pattern: &str) -> bool {
    let segments: Vec<&str> = pattern.split('.').collect();
    let last = segments.len() - 1;
    !pattern.is_empty()
        && pattern.len() <= MAX_TOPIC_LEN
        && segments.len() <= MAX_SEGMENTS
        && segments.iter().enumerate().all(|(i, s)| {
            *s == "*" || (*s == ">" && i == last) || naive_segment_ok(s)
        })
}

fn naive_matches(pattern: &[&str], topic: &[&str]) -> bool {
    match (pattern.split_first(), topic.split_first()) {
        (None, None) => true,
        (Some((&">", _)), Some(_)) => true,
        (Some((&"*", p)), Some((_, t))) => naive_matches(p, t),
        (Some((lit, p)), Some((seg, t))) => lit == seg && naive_matches(p, t),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let (pattern, topic) = match data.iter().position(|&b| b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => data.split_at(data.len() / 2),
    };
    let pattern = String::from_utf8_lossy(pattern);
    let topic = String::from_utf8_lossy(topic);

    let topic_ok = validate_topic(&topic).is_ok();
    assert_eq!(topic_ok, naive_topic_ok(&topic), "validate_topic({topic:?})");
    // Exercise the validator on the other half too.
    assert_eq!(
        validate_topic(&pattern).is_ok(),
        naive_topic_ok(&pattern),
        "validate_topic({pattern:?})"
    );

    let parsed = Pattern::parse(&pattern);
    assert_eq!(
        parsed.is_ok(),
        naive_pattern_ok(&pattern),
        "Pattern::parse({pattern:?})"
    );
    if let Err(error) = &parsed {
        let _ = error.to_string();
    }
    if let Ok(parsed) = parsed {
        assert_eq!(parsed.as_str(), &*pattern);
        let _ = parsed.segments().count();
        let matched = parsed.matches(&topic);
        if topic_ok {
            let p: Vec<&str> = pattern.split('.').collect();
            let t: Vec<&str> = topic.split('.').collect();
            assert_eq!(
                matched,
                naive_matches(&p, &t),
                "{pattern:?} matches {topic:?}"
            );
        } else {
            assert!(!matched, "{pattern:?} matched invalid topic {topic:?}");
        }
    }
});
