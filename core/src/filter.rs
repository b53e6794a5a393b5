//! Subscription filters: patterns or a set of kinds.

use crate::{
    kind::EventKind,
    topic::{Pattern, TopicError},
};

/// What a subscription receives: the union of its patterns.
///
/// A kind set is the patterns of its kinds' topics.
///
/// ```
/// use evbus::Filter;
///
/// let filter = Filter::pattern("orders.*")?.or(Filter::pattern("audit.>")?);
/// assert_eq!(filter.patterns_slice().len(), 2);
/// # Ok::<(), evbus::TopicError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    patterns: Vec<Pattern>,
}

impl Filter {
    /// A filter with one pattern.
    ///
    /// # Errors
    ///
    /// The [`TopicError`] of a pattern that breaks the rules.
    pub fn pattern(pattern: &str) -> Result<Self, TopicError> {
        Ok(Self {
            patterns: vec![Pattern::parse(pattern)?],
        })
    }

    /// A filter with several patterns.
    ///
    /// # Errors
    ///
    /// The [`TopicError`] of the first pattern that breaks the rules.
    pub fn patterns<I, S>(patterns: I) -> Result<Self, TopicError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut filter = Self::default();
        for p in patterns {
            filter.push(Pattern::parse(p.as_ref())?);
        }
        Ok(filter)
    }

    /// A filter matching the topics of `kinds`.
    ///
    /// # Errors
    ///
    /// The [`TopicError`] of a kind whose topic breaks the rules.
    pub fn kinds<K: EventKind>(kinds: &[K]) -> Result<Self, TopicError> {
        Self::patterns(kinds.iter().map(|k| k.topic()))
    }

    /// The union of two filters.
    #[must_use]
    pub fn or(mut self, other: Filter) -> Self {
        for p in other.patterns {
            self.push(p);
        }
        self
    }

    /// The patterns, without duplicates.
    pub fn patterns_slice(&self) -> &[Pattern] {
        &self.patterns
    }

    fn push(&mut self, pattern: Pattern) {
        if !self.patterns.contains(&pattern) {
            self.patterns.push(pattern);
        }
    }

    pub(crate) fn into_patterns(self) -> Vec<Pattern> {
        self.patterns
    }
}

impl From<Pattern> for Filter {
    fn from(pattern: Pattern) -> Self {
        Self {
            patterns: vec![pattern],
        }
    }
}
