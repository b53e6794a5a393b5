//! Topics to subjects and back: `<prefix>.<topic>`, checked.
//!
//! evbus topics already follow the NATS subject rules, so a valid topic
//! under a valid prefix is a valid subject. What can go wrong is the prefix,
//! a subject that no stream subject covers, or (importing) a subject written
//! by another NATS client that is not an evbus topic.

use evbus_core::{topic::Pattern, validate_topic};

use crate::error::SubjectError;

/// The longest prefix: with an evbus topic (at most 256 bytes) a subject
/// stays well inside NATS's 4096-byte control line.
pub const MAX_PREFIX_LEN: usize = 512;

/// Checks a subject prefix: empty, or dot-separated non-empty tokens
/// without whitespace or wildcards.
pub fn validate_prefix(prefix: &str) -> Result<(), SubjectError> {
    if prefix.is_empty() {
        return Ok(());
    }
    let bad = |reason: &'static str| SubjectError::InvalidPrefix {
        prefix: prefix.to_owned(),
        reason,
    };
    if prefix.len() > MAX_PREFIX_LEN {
        return Err(bad("longer than 512 bytes"));
    }
    for token in prefix.split('.') {
        if token.is_empty() {
            return Err(bad("an empty token (a leading, trailing or double dot)"));
        }
        if token == "*" || token == ">" {
            return Err(bad("a wildcard token"));
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("whitespace or a control character"));
        }
    }
    Ok(())
}

/// The subject of `topic` under `prefix`.
///
/// # Errors
///
/// [`SubjectError::InvalidPrefix`] or [`SubjectError::InvalidTopic`].
pub fn subject_for(prefix: &str, topic: &str) -> Result<String, SubjectError> {
    validate_prefix(prefix)?;
    validate_topic(topic).map_err(|e| SubjectError::InvalidTopic {
        topic: topic.to_owned(),
        reason: e.to_string(),
    })?;
    // At most 512 + 1 + 256 (evbus's `MAX_TOPIC_LEN`) bytes.
    Ok(join(prefix, topic))
}

/// The subject filter of an evbus pattern under `prefix`.
///
/// # Errors
///
/// As [`subject_for`], for a pattern.
pub fn filter_for(prefix: &str, pattern: &str) -> Result<String, SubjectError> {
    validate_prefix(prefix)?;
    Pattern::parse(pattern).map_err(|e| SubjectError::InvalidTopic {
        topic: pattern.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(join(prefix, pattern))
}

/// The topic of `subject`, if it is `<prefix>.<an evbus topic>`.
///
/// # Errors
///
/// [`SubjectError::OutsidePrefix`] or [`SubjectError::InvalidTopic`].
pub fn topic_of<'a>(prefix: &str, subject: &'a str) -> Result<&'a str, SubjectError> {
    let topic = if prefix.is_empty() {
        subject
    } else {
        subject
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('.'))
            .ok_or_else(|| SubjectError::OutsidePrefix {
                subject: subject.to_owned(),
                prefix: prefix.to_owned(),
            })?
    };
    validate_topic(topic).map_err(|e| SubjectError::InvalidTopic {
        topic: topic.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(topic)
}

fn join(prefix: &str, rest: &str) -> String {
    if prefix.is_empty() {
        rest.to_owned()
    } else {
        format!("{prefix}.{rest}")
    }
}

/// Whether every subject that `filter` matches is matched by `wide` (both in
/// NATS syntax: `*` one token, a final `>` one or more).
pub fn covers(wide: &str, filter: &str) -> bool {
    let mut w = wide.split('.');
    let mut f = filter.split('.');
    loop {
        match (w.next(), f.next()) {
            (None, None) => return true,
            (Some(">"), Some(_)) => return true,
            (Some(_), Some(">")) | (None, Some(_)) | (Some(_), None) => return false,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) => {
                if a != b {
                    return false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_topics_round_trip() {
        assert_eq!(subject_for("evbus", "a.b").unwrap(), "evbus.a.b");
        assert_eq!(subject_for("", "a.b").unwrap(), "a.b");
        assert_eq!(topic_of("evbus", "evbus.a.b").unwrap(), "a.b");
        assert_eq!(topic_of("", "a.b").unwrap(), "a.b");
    }

    #[test]
    fn bad_prefixes_topics_and_subjects_are_typed_errors() {
        for p in ["a..b", ".a", "a.", "a.*", "a b", ">"] {
            assert!(
                matches!(subject_for(p, "x"), Err(SubjectError::InvalidPrefix { .. })),
                "{p}"
            );
        }
        assert!(matches!(
            subject_for("evbus", "a..b"),
            Err(SubjectError::InvalidTopic { .. })
        ));
        assert!(matches!(
            subject_for(&"x".repeat(600), "a"),
            Err(SubjectError::InvalidPrefix { .. })
        ));
        assert!(matches!(
            topic_of("evbus", "other.a"),
            Err(SubjectError::OutsidePrefix { .. })
        ));
        assert!(matches!(
            topic_of("evbus", "evbus.a$b"),
            Err(SubjectError::InvalidTopic { .. })
        ));
        assert!(matches!(
            topic_of("evbus", "evbus"),
            Err(SubjectError::OutsidePrefix { .. })
        ));
    }

    #[test]
    fn coverage_follows_the_wildcards() {
        assert!(covers("evbus.>", "evbus.a.b"));
        assert!(covers("evbus.>", "evbus.a.>"));
        assert!(covers("evbus.*.b", "evbus.x.b"));
        assert!(covers("evbus.*.>", "evbus.*.b"));
        assert!(!covers("evbus.*", "evbus.a.b"));
        assert!(!covers("evbus.a", "evbus.>"));
        assert!(!covers("evbus.>", "evbus"));
        assert!(!covers("other.>", "evbus.a"));
        assert!(!covers("evbus.a.*", "evbus.a.>"));
    }
}
