//! Integration tests for topic validation and pattern matching, through the
//! public API only.

use evbus_core::topic::{
    MAX_SEGMENTS, MAX_TOPIC_LEN, Pattern, PatternSegment, TopicError, validate_topic,
};
use proptest::prelude::*;

fn pattern(s: &str) -> Pattern {
    Pattern::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

/// `count` segments `a`, joined by `.`.
fn segments(count: usize) -> String {
    vec!["a"; count].join(".")
}

#[test]
fn valid_topics() {
    for topic in [
        "a",
        "orders",
        "orders.eu.created",
        "A-Z_a-z.0-9",
        "_",
        "-",
        "0.1.2.3",
        "sensor-7.temp_c",
    ] {
        assert_eq!(validate_topic(topic), Ok(()), "{topic:?}");
        assert!(Pattern::parse(topic).is_ok(), "{topic:?}");
        assert!(pattern(topic).is_literal(), "{topic:?}");
        assert!(pattern(topic).matches(topic), "{topic:?}");
    }
}

#[test]
fn topic_errors_name_the_rule_and_position() {
    use TopicError::*;
    let cases: &[(&str, TopicError)] = &[
        ("", Empty),
        (".", EmptySegment { position: 0 }),
        (".a", EmptySegment { position: 0 }),
        ("a.", EmptySegment { position: 1 }),
        ("a..b", EmptySegment { position: 1 }),
        ("a.b.", EmptySegment { position: 2 }),
        (
            "a.b$",
            InvalidCharacter {
                position: 1,
                character: '$',
            },
        ),
        (
            "a b",
            InvalidCharacter {
                position: 0,
                character: ' ',
            },
        ),
        (
            "a.b.caf\u{e9}",
            InvalidCharacter {
                position: 2,
                character: '\u{e9}',
            },
        ),
        ("*", WildcardInTopic { position: 0 }),
        ("a.*", WildcardInTopic { position: 1 }),
        ("a.>", WildcardInTopic { position: 1 }),
        (">.a", WildcardInTopic { position: 0 }),
        ("a*", PartialWildcard { position: 0 }),
        ("a.>b", PartialWildcard { position: 1 }),
        ("a.b.**", PartialWildcard { position: 2 }),
    ];
    for (topic, error) in cases {
        assert_eq!(validate_topic(topic).as_ref(), Err(error), "{topic:?}");
    }
}

#[test]
fn pattern_errors_name_the_rule_and_position() {
    use TopicError::*;
    let cases: &[(&str, TopicError)] = &[
        ("", Empty),
        ("a..*", EmptySegment { position: 1 }),
        ("*.", EmptySegment { position: 1 }),
        (
            "a.*.b#",
            InvalidCharacter {
                position: 2,
                character: '#',
            },
        ),
        ("a*", PartialWildcard { position: 0 }),
        ("a.>b", PartialWildcard { position: 1 }),
        ("a.*>", PartialWildcard { position: 1 }),
        ("a.b*c", PartialWildcard { position: 1 }),
        (">.a", TailNotLast { position: 0 }),
        ("a.>.*", TailNotLast { position: 1 }),
        ("a.>.>", TailNotLast { position: 1 }),
    ];
    for (text, error) in cases {
        assert_eq!(Pattern::parse(text).as_ref(), Err(error), "{text:?}");
        assert_eq!(text.parse::<Pattern>().as_ref(), Err(error), "{text:?}");
        assert_eq!(Pattern::try_from(*text).as_ref(), Err(error), "{text:?}");
    }
}

#[test]
fn tail_alone_matches_every_topic() {
    let all = pattern(">");
    assert!(!all.is_literal());
    for topic in ["a", "a.b", "a.b.c.d.e", &segments(MAX_SEGMENTS)] {
        assert!(all.matches(topic), "{topic:?}");
    }
    assert!(!all.matches(""));
    assert!(!all.matches("a..b"));
}

#[test]
fn star_matches_exactly_one_segment() {
    let p = pattern("a.*");
    assert!(p.matches("a.b"));
    assert!(p.matches("a.a"));
    assert!(!p.matches("a"));
    assert!(!p.matches("a.b.c"));
    assert!(!p.matches("b.b"));

    let p = pattern("*.b.*");
    assert!(p.matches("x.b.y"));
    assert!(!p.matches("x.c.y"));
    assert!(!p.matches("x.b"));

    let p = pattern("*");
    assert!(p.matches("x"));
    assert!(!p.matches("x.y"));
}

#[test]
fn tail_needs_at_least_one_segment() {
    let p = pattern("a.>");
    assert!(!p.matches("a"));
    assert!(p.matches("a.b"));
    assert!(p.matches("a.b.c"));
    assert!(!p.matches("b.c"));

    let p = pattern("a.*.>");
    assert!(!p.matches("a.b"));
    assert!(p.matches("a.b.c"));
}

#[test]
fn literal_patterns_match_only_themselves() {
    let p = pattern("orders.eu");
    assert!(p.is_literal());
    assert!(p.matches("orders.eu"));
    assert!(!p.matches("orders"));
    assert!(!p.matches("orders.eu.x"));
    assert!(!p.matches("orders.EU"));
}

#[test]
fn matches_rejects_invalid_topics() {
    for topic in ["", "a.", "a..b", "a.*", "a.>", "a.b$", "a.\u{e9}"] {
        assert!(!pattern(">").matches(topic), "{topic:?}");
        assert!(!pattern("a.*").matches(topic), "{topic:?}");
        assert!(!pattern("a.*.*").matches(topic), "{topic:?}");
    }
    // A literal pattern text that is not a valid topic cannot exist, so the
    // literal fast path never has to validate.
    assert!(!pattern("a.b").matches("a.b."));
}

#[test]
fn segments_and_accessors() {
    let p = pattern("orders.*.eu.>");
    assert_eq!(
        p.segments().collect::<Vec<_>>(),
        [
            PatternSegment::Literal("orders"),
            PatternSegment::Star,
            PatternSegment::Literal("eu"),
            PatternSegment::Tail,
        ]
    );
    assert_eq!(p.as_str(), "orders.*.eu.>");
    assert_eq!(p.to_string(), "orders.*.eu.>");
    assert_eq!(format!("{:?}", pattern("a.*")), r#"Pattern("a.*")"#);
    assert_eq!(p.clone(), p);
    assert_ne!(pattern("a.*"), pattern("a.>"));
    assert_eq!(
        pattern(">").segments().collect::<Vec<_>>(),
        [PatternSegment::Tail]
    );
}

#[test]
fn length_limit_at_max_and_max_plus_one() {
    // Two segments keep the segment count low.
    let half = "a".repeat(MAX_TOPIC_LEN / 2);
    let at_max = format!("{half}.{}", "b".repeat(MAX_TOPIC_LEN - half.len() - 1));
    assert_eq!(at_max.len(), MAX_TOPIC_LEN);
    assert_eq!(validate_topic(&at_max), Ok(()));
    assert!(Pattern::parse(&at_max).is_ok());

    let over = format!("{at_max}b");
    let error = TopicError::TooLong {
        len: MAX_TOPIC_LEN + 1,
        max: MAX_TOPIC_LEN,
    };
    assert_eq!(validate_topic(&over), Err(error.clone()));
    assert_eq!(Pattern::parse(&over), Err(error));
    assert!(!pattern(">").matches(&over));

    // The length limit is checked before anything else.
    let bad = "$".repeat(MAX_TOPIC_LEN + 10);
    assert!(matches!(
        validate_topic(&bad),
        Err(TopicError::TooLong { len, .. }) if len == MAX_TOPIC_LEN + 10
    ));
    // Bytes, not characters.
    let wide = "\u{e9}".repeat(MAX_TOPIC_LEN / 2 + 1);
    assert!(matches!(
        validate_topic(&wide),
        Err(TopicError::TooLong { .. })
    ));
}

#[test]
fn segment_limit_at_max_and_max_plus_one() {
    let at_max = segments(MAX_SEGMENTS);
    assert_eq!(validate_topic(&at_max), Ok(()));
    assert!(pattern(&at_max).matches(&at_max));
    let mut wild = vec!["*"; MAX_SEGMENTS - 1];
    wild.push(">");
    assert!(pattern(&wild.join(".")).matches(&at_max));

    let error = TopicError::TooManySegments {
        count: MAX_SEGMENTS + 1,
        max: MAX_SEGMENTS,
    };
    let over = segments(MAX_SEGMENTS + 1);
    assert_eq!(validate_topic(&over), Err(error.clone()));
    assert_eq!(Pattern::parse(&over), Err(error));
    assert!(!pattern(">").matches(&over));
    wild.insert(0, "*");
    assert!(matches!(
        Pattern::parse(&wild.join(".")),
        Err(TopicError::TooManySegments { count, .. }) if count == MAX_SEGMENTS + 1
    ));

    assert_eq!(
        validate_topic(&segments(50)),
        Err(TopicError::TooManySegments {
            count: 50,
            max: MAX_SEGMENTS
        })
    );
}

#[test]
fn odd_input_does_not_panic() {
    let inputs = [
        "",
        ".",
        "..",
        "...",
        "*",
        ">",
        "*.>",
        ">>",
        "**",
        "\u{0}",
        "\u{e9}",
        "a.\u{e9}.b",
        "\u{1F600}",
        "a.\u{1F600}",
        "\u{1F600}*",
        "*\u{1F600}",
        "a.>\u{1F600}",
        "\u{FFFD}.\u{FFFD}",
        "a\u{301}",
        "\t",
        "a\n.b",
        "\u{202E}abc",
        "ａ",
    ];
    for input in inputs {
        let topic = validate_topic(input);
        let parsed = Pattern::parse(input);
        if let Err(e) = &topic {
            assert!(!e.to_string().is_empty());
        }
        if let Ok(p) = &parsed {
            let _ = p.segments().count();
        }
        for p in [">", "*", "a.*", "a.>", "a"] {
            let _ = pattern(p).matches(input);
        }
    }
    assert_eq!(
        validate_topic("a.\u{1F600}"),
        Err(TopicError::InvalidCharacter {
            position: 1,
            character: '\u{1F600}'
        })
    );
    assert_eq!(
        Pattern::parse("*\u{1F600}"),
        Err(TopicError::PartialWildcard { position: 0 })
    );
}

#[test]
fn display_is_lowercase_without_trailing_period() {
    let errors = [
        TopicError::Empty,
        TopicError::EmptySegment { position: 2 },
        TopicError::InvalidCharacter {
            position: 1,
            character: '$',
        },
        TopicError::WildcardInTopic { position: 0 },
        TopicError::PartialWildcard { position: 3 },
        TopicError::TailNotLast { position: 1 },
        TopicError::TooManySegments { count: 40, max: 32 },
        TopicError::TooLong { len: 300, max: 256 },
    ];
    for error in &errors {
        let text = error.to_string();
        let first = text.chars().next().unwrap();
        assert!(first.is_lowercase(), "{text:?}");
        assert!(!text.ends_with('.'), "{text:?}");
        let _: &dyn std::error::Error = error;
    }
    assert_eq!(
        TopicError::EmptySegment { position: 2 }.to_string(),
        "topic segment 2 is empty"
    );
    assert!(
        TopicError::TooLong { len: 300, max: 256 }
            .to_string()
            .contains("300")
    );
}

#[cfg(feature = "serde")]
#[test]
fn serde_round_trip() {
    let p = pattern("orders.*.>");
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(json, r#""orders.*.>""#);
    let back: Pattern = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p);

    let list: Vec<Pattern> = serde_json::from_str(r#"[">", "a.b", "*.c"]"#).unwrap();
    assert_eq!(list, [pattern(">"), pattern("a.b"), pattern("*.c")]);

    let error = serde_json::from_str::<Pattern>(r#""a.>.b""#).unwrap_err();
    assert!(error.to_string().contains("segment 1"), "{error}");
    assert!(serde_json::from_str::<Pattern>(r#""""#).is_err());
    assert!(serde_json::from_str::<Pattern>("42").is_err());
}

/// A deliberately naive matcher: split both on `.` and recurse.
fn naive_matches(pattern: &str, topic: &str) -> bool {
    fn valid_segment(s: &str) -> bool {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }
    fn go(p: &[&str], t: &[&str]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(&">"), Some(_)) => p.len() == 1,
            (Some(&"*"), Some(_)) => go(&p[1..], &t[1..]),
            (Some(lit), Some(seg)) => lit == seg && go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    let t: Vec<&str> = topic.split('.').collect();
    if topic.len() > MAX_TOPIC_LEN || t.len() > MAX_SEGMENTS || !t.iter().all(|s| valid_segment(s))
    {
        return false;
    }
    let p: Vec<&str> = pattern.split('.').collect();
    go(&p, &t)
}

fn segment_strategy(wild: bool) -> impl Strategy<Value = String> {
    let mut choices = vec!["a", "b", "ab", "-", "_", "0"];
    if wild {
        choices.extend(["*", "*", ">"]);
    }
    prop_oneof![
        20 => prop::sample::select(choices).prop_map(str::to_owned),
        1 => "[a-c*>.$é ]{0,3}",
    ]
}

fn text_strategy(wild: bool) -> impl Strategy<Value = String> {
    prop::collection::vec(segment_strategy(wild), 1..6).prop_map(|s| s.join("."))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 2 } else { 512 },
        // No regression files: Miri's isolation forbids file access.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn matches_agrees_with_naive_matcher(
        p in text_strategy(true),
        t in text_strategy(false),
    ) {
        if let Ok(parsed) = Pattern::parse(&p) {
            prop_assert_eq!(parsed.matches(&t), naive_matches(&p, &t), "{} vs {}", p, t);
            prop_assert_eq!(parsed.as_str(), p.as_str());
            let reparsed: Pattern = parsed.to_string().parse().unwrap();
            prop_assert_eq!(reparsed, parsed);
        }
    }

    #[test]
    fn any_string_never_panics(s in any::<String>(), t in any::<String>()) {
        let _ = validate_topic(&s);
        if let Ok(p) = Pattern::parse(&s) {
            let _ = p.matches(&t);
            prop_assert_eq!(p.as_str(), s.as_str());
        }
    }

    #[test]
    fn valid_topic_is_a_literal_pattern_matching_itself(t in text_strategy(false)) {
        if validate_topic(&t).is_ok() {
            let p = Pattern::parse(&t).unwrap();
            prop_assert!(p.is_literal());
            prop_assert!(p.matches(&t));
            prop_assert!(Pattern::parse(">").unwrap().matches(&t));
        }
    }
}
