//! Topics, subscription patterns and the rules that validate and match them.
//!
//! The rules are those of NATS subjects:
//!
//! - A **topic** is one or more *segments* separated by `.`. Every segment is
//!   non-empty and made only of ASCII letters, digits, `_` and `-`
//!   (`[A-Za-z0-9_-]+`). Examples: `orders`, `orders.eu.created`,
//!   `sensor-7.temp_c`.
//! - A **pattern** is a topic in which a segment may also be a wildcard:
//!   - `*` matches exactly one segment: `orders.*` matches `orders.eu` but
//!     neither `orders` nor `orders.eu.created`;
//!   - `>` matches one or more remaining segments and is only allowed as the
//!     last segment: `orders.>` matches `orders.eu` and `orders.eu.created`
//!     but not `orders`. `>` alone matches every topic.
//!
//!   A wildcard must be a whole segment: `ord*` and `>b` are errors.
//! - Topics and patterns are at most [`MAX_TOPIC_LEN`] bytes long and have at
//!   most [`MAX_SEGMENTS`] segments.
//!
//! Validation and matching never panic, whatever the input (including
//! non-ASCII text).
//!
//! ```
//! use evbus::topic::{Pattern, validate_topic};
//!
//! assert!(validate_topic("orders.eu.created").is_ok());
//! assert!(validate_topic("orders.*").is_err()); // wildcards only in patterns
//!
//! let pattern = Pattern::parse("orders.*.created").unwrap();
//! assert!(pattern.matches("orders.eu.created"));
//! assert!(!pattern.matches("orders.eu.cancelled"));
//!
//! let all = Pattern::parse(">").unwrap();
//! assert!(all.matches("anything.at.all"));
//! ```

use std::fmt;
use std::str::FromStr;

/// The maximum number of segments in a topic or pattern.
pub const MAX_SEGMENTS: usize = 32;

/// The maximum length of a topic or pattern, in bytes.
pub const MAX_TOPIC_LEN: usize = 256;

// Literal segments are stored as `u16` byte offsets into the raw text.
const _: () = assert!(MAX_TOPIC_LEN <= u16::MAX as usize);

/// Why a topic or pattern is invalid.
///
/// Positions are zero-based *segment* indices (not byte offsets). When a text
/// breaks several rules, the length limit is reported first, then the first
/// offending segment from the left.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopicError {
    /// The text is empty.
    Empty,
    /// A segment is empty: the text starts or ends with `.`, or contains `..`.
    EmptySegment {
        /// Index of the empty segment.
        position: usize,
    },
    /// A segment contains a character outside `[A-Za-z0-9_-]`.
    InvalidCharacter {
        /// Index of the segment holding the character.
        position: usize,
        /// The first offending character.
        character: char,
    },
    /// A concrete topic has a wildcard segment (`*` or `>`); wildcards are
    /// only allowed in patterns.
    WildcardInTopic {
        /// Index of the wildcard segment.
        position: usize,
    },
    /// A wildcard shares its segment with other characters, as in `a*` or
    /// `>b`; a wildcard must be a whole segment.
    PartialWildcard {
        /// Index of the segment holding the wildcard.
        position: usize,
    },
    /// The tail wildcard `>` is followed by further segments; it must be the
    /// last segment of a pattern.
    TailNotLast {
        /// Index of the `>` segment.
        position: usize,
    },
    /// The text has more than [`MAX_SEGMENTS`] segments.
    TooManySegments {
        /// Number of segments in the text.
        count: usize,
        /// The limit, [`MAX_SEGMENTS`].
        max: usize,
    },
    /// The text is longer than [`MAX_TOPIC_LEN`] bytes.
    TooLong {
        /// Length of the text in bytes.
        len: usize,
        /// The limit, [`MAX_TOPIC_LEN`].
        max: usize,
    },
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("topic is empty"),
            Self::EmptySegment { position } => write!(f, "topic segment {position} is empty"),
            Self::InvalidCharacter {
                position,
                character,
            } => write!(
                f,
                "topic segment {position} contains invalid character {character:?} \
                 (allowed: ascii letters, digits, '_' and '-')"
            ),
            Self::WildcardInTopic { position } => write!(
                f,
                "topic segment {position} is a wildcard, which is only allowed in patterns"
            ),
            Self::PartialWildcard { position } => write!(
                f,
                "topic segment {position} mixes a wildcard with other characters \
                 (a wildcard must be a whole segment)"
            ),
            Self::TailNotLast { position } => write!(
                f,
                "topic segment {position} is '>', which is only allowed as the last segment"
            ),
            Self::TooManySegments { count, max } => {
                write!(
                    f,
                    "topic has {count} segments, more than the maximum of {max}"
                )
            }
            Self::TooLong { len, max } => {
                write!(
                    f,
                    "topic is {len} bytes long, more than the maximum of {max}"
                )
            }
        }
    }
}

impl std::error::Error for TopicError {}

/// Whether `b` may appear in a literal segment.
#[inline]
fn is_segment_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// The character starting at byte `at` of `text`, for error reports.
///
/// Every byte before `at` has been checked to be ASCII, so `at` is a char
/// boundary; the fallback only keeps this panic-free.
fn char_at(text: &str, at: usize) -> char {
    text.get(at..)
        .and_then(|rest| rest.chars().next())
        .unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// The [`TopicError::TooManySegments`] error for a text whose segment number
/// [`MAX_SEGMENTS`] (the first one too many) starts after byte `dot`.
fn too_many_segments(bytes: &[u8], dot: usize) -> TopicError {
    let more = bytes
        .get(dot + 1..)
        .map_or(0, |rest| rest.iter().filter(|&&b| b == b'.').count());
    TopicError::TooManySegments {
        count: MAX_SEGMENTS + 1 + more,
        max: MAX_SEGMENTS,
    }
}

/// One token of a parsed pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Token {
    /// A literal segment: byte range `start..end` of the raw text.
    Literal { start: u16, end: u16 },
    /// `*`.
    Star,
    /// `>`.
    Tail,
}

/// Scans `text` once, checking the shared rules and, for patterns
/// (`wildcards == true`), the wildcard rules. Calls `token` for every segment
/// in order. Allocates nothing itself.
fn scan(text: &str, wildcards: bool, mut token: impl FnMut(Token)) -> Result<(), TopicError> {
    let bytes = text.as_bytes();
    if bytes.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong {
            len: bytes.len(),
            max: MAX_TOPIC_LEN,
        });
    }
    if bytes.is_empty() {
        return Err(TopicError::Empty);
    }
    let mut position = 0;
    let mut start = 0;
    // The current segment is a whole-segment wildcard (`*` or `>`).
    let mut wildcard: Option<Token> = None;
    // Handles the end of the segment `start..end` (exclusive).
    let mut finish = |position: usize,
                      start: usize,
                      end: usize,
                      wildcard: Option<Token>,
                      last: bool|
     -> Result<(), TopicError> {
        if start == end {
            return Err(TopicError::EmptySegment { position });
        }
        match wildcard {
            Some(Token::Tail) if !last => Err(TopicError::TailNotLast { position }),
            Some(wildcard) => {
                token(wildcard);
                Ok(())
            }
            None => {
                // Both bounds are at most MAX_TOPIC_LEN, which fits in u16.
                token(Token::Literal {
                    start: start as u16,
                    end: end as u16,
                });
                Ok(())
            }
        }
    };
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'.' {
            finish(position, start, i, wildcard, false)?;
            position += 1;
            start = i + 1;
            wildcard = None;
            if position == MAX_SEGMENTS {
                return Err(too_many_segments(bytes, i));
            }
        } else if b == b'*' || b == b'>' {
            let whole = i == start && bytes.get(i + 1).is_none_or(|&next| next == b'.');
            if !whole {
                return Err(TopicError::PartialWildcard { position });
            }
            if !wildcards {
                return Err(TopicError::WildcardInTopic { position });
            }
            wildcard = Some(if b == b'*' { Token::Star } else { Token::Tail });
        } else if !is_segment_byte(b) {
            return Err(TopicError::InvalidCharacter {
                position,
                character: char_at(text, i),
            });
        }
    }
    finish(position, start, bytes.len(), wildcard, true)
}

/// Checks that `topic` is a valid concrete topic: no wildcards, see the
/// [module documentation](self) for the rules.
///
/// This runs on every publish: it makes a single pass over the bytes and
/// allocates nothing.
///
/// # Errors
///
/// Returns the [`TopicError`] naming the first rule `topic` breaks:
/// [`TooLong`](TopicError::TooLong) is checked first, then
/// [`Empty`](TopicError::Empty), then segments from left to right
/// ([`EmptySegment`](TopicError::EmptySegment),
/// [`InvalidCharacter`](TopicError::InvalidCharacter),
/// [`WildcardInTopic`](TopicError::WildcardInTopic),
/// [`PartialWildcard`](TopicError::PartialWildcard),
/// [`TooManySegments`](TopicError::TooManySegments) when segment
/// [`MAX_SEGMENTS`] is reached).
///
/// # Examples
///
/// ```
/// use evbus::topic::{TopicError, validate_topic};
///
/// assert_eq!(validate_topic("orders.eu.created"), Ok(()));
/// assert_eq!(
///     validate_topic("orders..created"),
///     Err(TopicError::EmptySegment { position: 1 })
/// );
/// assert_eq!(
///     validate_topic("orders.*"),
///     Err(TopicError::WildcardInTopic { position: 1 })
/// );
/// ```
pub fn validate_topic(topic: &str) -> Result<(), TopicError> {
    scan(topic, false, |_| {})
}

/// One segment of a [`Pattern`], as yielded by [`Pattern::segments`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternSegment<'a> {
    /// A literal segment, matching exactly this text.
    Literal(&'a str),
    /// `*`: matches exactly one segment.
    Star,
    /// `>`: matches one or more remaining segments; always the last segment.
    Tail,
}

/// A validated subscription pattern, such as `orders.*.created` or
/// `orders.>`.
///
/// A pattern keeps its original text (see [`as_str`](Self::as_str) and the
/// [`Display`](fmt::Display) impl) and a parsed form used for matching. See
/// the [module documentation](self) for the rules.
///
/// # Examples
///
/// ```
/// use evbus::topic::Pattern;
///
/// let pattern: Pattern = "orders.>".parse().unwrap();
/// assert!(pattern.matches("orders.eu"));
/// assert!(pattern.matches("orders.eu.created"));
/// assert!(!pattern.matches("orders"));
/// assert_eq!(pattern.to_string(), "orders.>");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    raw: Box<str>,
    tokens: Box<[Token]>,
    literal: bool,
}

impl Pattern {
    /// Parses and validates a pattern.
    ///
    /// # Errors
    ///
    /// Returns the [`TopicError`] naming the first rule `s` breaks, in the
    /// same order as [`validate_topic`]; wildcard segments are allowed, but
    /// [`TailNotLast`](TopicError::TailNotLast) is reported for a `>` that is
    /// not the last segment.
    ///
    /// # Examples
    ///
    /// ```
    /// use evbus::topic::{Pattern, TopicError};
    ///
    /// assert!(Pattern::parse("orders.*.created").is_ok());
    /// assert_eq!(
    ///     Pattern::parse("orders.>.created"),
    ///     Err(TopicError::TailNotLast { position: 1 })
    /// );
    /// assert_eq!(
    ///     Pattern::parse("orders.eu*"),
    ///     Err(TopicError::PartialWildcard { position: 1 })
    /// );
    /// ```
    pub fn parse(s: &str) -> Result<Pattern, TopicError> {
        let mut tokens = Vec::new();
        scan(s, true, |token| tokens.push(token))?;
        let literal = tokens
            .iter()
            .all(|token| matches!(token, Token::Literal { .. }));
        Ok(Pattern {
            raw: s.into(),
            tokens: tokens.into_boxed_slice(),
            literal,
        })
    }

    /// The pattern's text, exactly as parsed.
    ///
    /// # Examples
    ///
    /// ```
    /// use evbus::topic::Pattern;
    ///
    /// assert_eq!(Pattern::parse("a.*").unwrap().as_str(), "a.*");
    /// ```
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether the pattern has no wildcard, so that it matches exactly one
    /// topic: its own text.
    ///
    /// # Examples
    ///
    /// ```
    /// use evbus::topic::Pattern;
    ///
    /// assert!(Pattern::parse("orders.eu").unwrap().is_literal());
    /// assert!(!Pattern::parse("orders.*").unwrap().is_literal());
    /// ```
    pub fn is_literal(&self) -> bool {
        self.literal
    }

    /// Whether `topic` matches this pattern.
    ///
    /// Returns `false` when `topic` is not a valid topic (see
    /// [`validate_topic`]). Allocates nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use evbus::topic::Pattern;
    ///
    /// let pattern = Pattern::parse("orders.*").unwrap();
    /// assert!(pattern.matches("orders.eu"));
    /// assert!(!pattern.matches("orders"));
    /// assert!(!pattern.matches("orders.eu.created"));
    /// assert!(!pattern.matches("orders.e$")); // not a valid topic
    /// ```
    pub fn matches(&self, topic: &str) -> bool {
        if self.literal {
            // A literal pattern obeys every topic rule, so equal text is a
            // valid topic.
            return *self.raw == *topic;
        }
        if validate_topic(topic).is_err() {
            return false;
        }
        let mut segments = topic.split('.');
        for segment in self.segments() {
            match segment {
                // `>` is always last and needs at least one more segment.
                PatternSegment::Tail => return segments.next().is_some(),
                PatternSegment::Star => {
                    if segments.next().is_none() {
                        return false;
                    }
                }
                PatternSegment::Literal(literal) => {
                    if segments.next() != Some(literal) {
                        return false;
                    }
                }
            }
        }
        segments.next().is_none()
    }

    /// The pattern's segments, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// use evbus::topic::{Pattern, PatternSegment};
    ///
    /// let pattern = Pattern::parse("orders.*.>").unwrap();
    /// let segments: Vec<_> = pattern.segments().collect();
    /// assert_eq!(
    ///     segments,
    ///     [
    ///         PatternSegment::Literal("orders"),
    ///         PatternSegment::Star,
    ///         PatternSegment::Tail,
    ///     ]
    /// );
    /// ```
    pub fn segments(&self) -> impl Iterator<Item = PatternSegment<'_>> {
        self.tokens.iter().map(move |token| match *token {
            Token::Literal { start, end } => PatternSegment::Literal(
                self.raw
                    .get(usize::from(start)..usize::from(end))
                    .unwrap_or_default(),
            ),
            Token::Star => PatternSegment::Star,
            Token::Tail => PatternSegment::Tail,
        })
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&&*self.raw).finish()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl FromStr for Pattern {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pattern::parse(s)
    }
}

impl TryFrom<&str> for Pattern {
    type Error = TopicError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Pattern::parse(s)
    }
}

/// Serializes as the pattern's text.
#[cfg(feature = "serde")]
impl serde::Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.raw)
    }
}

/// Deserializes from a string and validates it with [`Pattern::parse`]; an
/// invalid pattern is a deserialization error.
#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PatternVisitor;

        impl serde::de::Visitor<'_> for PatternVisitor {
            type Value = Pattern;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a topic pattern string")
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Pattern, E> {
                Pattern::parse(s).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(PatternVisitor)
    }
}

/// An interned topic of one bus: publishing on it skips hashing and
/// matching. Made by [`Bus::topic`](crate::Bus::topic).
#[derive(Clone, PartialEq, Eq)]
pub struct Topic {
    bus: u64,
    pub(crate) id: u32,
    name: std::sync::Arc<str>,
}

impl Topic {
    pub(crate) fn new(bus: u64, id: u32, name: &str) -> Self {
        Self {
            bus,
            id,
            name: name.into(),
        }
    }

    /// The topic's name.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    pub(crate) fn belongs_to(&self, bus: u64) -> bool {
        self.bus == bus
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Topic").field(&&*self.name).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(s: &str) -> Vec<Token> {
        let mut out = Vec::new();
        scan(s, true, |t| out.push(t)).unwrap();
        out
    }

    #[test]
    fn scan_yields_byte_ranges() {
        assert_eq!(
            tokens("ab.*.c-d.>"),
            [
                Token::Literal { start: 0, end: 2 },
                Token::Star,
                Token::Literal { start: 5, end: 8 },
                Token::Tail,
            ]
        );
    }

    #[test]
    fn scan_reports_no_tokens_past_an_error() {
        let mut seen = 0;
        assert!(scan("a.b.$", false, |_| seen += 1).is_err());
        assert_eq!(seen, 2);
    }

    #[test]
    fn too_many_segments_counts_all_dots() {
        let text = vec!["a"; 40].join(".");
        assert_eq!(
            validate_topic(&text),
            Err(TopicError::TooManySegments { count: 40, max: 32 })
        );
    }

    #[test]
    fn char_at_never_panics() {
        assert_eq!(char_at("aé", 1), 'é');
        assert_eq!(char_at("é", 1), char::REPLACEMENT_CHARACTER);
        assert_eq!(char_at("a", 5), char::REPLACEMENT_CHARACTER);
    }

    #[test]
    fn literal_fast_path_agrees_with_general_path() {
        let pattern = Pattern::parse("a.b").unwrap();
        assert!(pattern.is_literal());
        assert!(pattern.matches("a.b"));
        assert!(!pattern.matches("a.b.c"));
        assert!(!pattern.matches("a"));
    }
}
