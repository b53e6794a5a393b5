//! Subscription filters: patterns or a set of kinds.

use ahash::AHashSet;

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
        let patterns = patterns
            .into_iter()
            .map(|p| Pattern::parse(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            patterns: dedup(patterns),
        })
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
        self.patterns.extend(other.patterns);
        self.patterns = dedup(self.patterns);
        self
    }

    /// The patterns, without duplicates.
    pub fn patterns_slice(&self) -> &[Pattern] {
        &self.patterns
    }

    pub(crate) fn into_patterns(self) -> Vec<Pattern> {
        self.patterns
    }
}

/// `patterns` without repeats, each kept where it first appears: one hash
/// set insert per pattern, so linear in their number.
fn dedup(mut patterns: Vec<Pattern>) -> Vec<Pattern> {
    let keep: Vec<bool> = {
        let mut seen = AHashSet::with_capacity(patterns.len());
        // Two patterns are equal exactly when their texts are.
        patterns.iter().map(|p| seen.insert(p.as_str())).collect()
    };
    let mut keep = keep.into_iter();
    patterns.retain(|_| keep.next().unwrap_or(false));
    patterns
}

impl From<Pattern> for Filter {
    fn from(pattern: Pattern) -> Self {
        Self {
            patterns: vec![pattern],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(filter: &Filter) -> Vec<&str> {
        filter
            .patterns_slice()
            .iter()
            .map(Pattern::as_str)
            .collect()
    }

    #[test]
    fn patterns_drop_repeats_keeping_first_order() {
        let filter = Filter::patterns(["b.*", "a", "b.*", "c.>", "a", "a"]).unwrap();
        assert_eq!(texts(&filter), ["b.*", "a", "c.>"]);
    }

    #[test]
    fn or_drops_repeats_across_both_sides() {
        let left = Filter::patterns(["a", "b"]).unwrap();
        let right = Filter::patterns(["c", "b", "a", "d"]).unwrap();
        assert_eq!(texts(&left.or(right)), ["a", "b", "c", "d"]);
        let same = Filter::pattern("x.>").unwrap();
        assert_eq!(texts(&same.clone().or(same)), ["x.>"]);
    }

    #[test]
    fn many_patterns_and_many_repeats() {
        let n = if cfg!(miri) { 200 } else { 40_000 };
        let names: Vec<String> = (0..n).map(|i| format!("p.{}", i % (n / 2))).collect();
        let filter = Filter::patterns(&names).unwrap();
        assert_eq!(filter.patterns_slice().len(), n / 2);
        let expected: Vec<String> = (0..n / 2).map(|i| format!("p.{i}")).collect();
        assert_eq!(texts(&filter), expected);
    }

    #[test]
    fn first_invalid_pattern_is_the_error() {
        assert_eq!(
            Filter::patterns(["a", "b..c", "d*"]),
            Err(TopicError::EmptySegment { position: 1 })
        );
    }

    #[test]
    fn kinds_and_from_pattern() {
        let filter = Filter::from(Pattern::parse("a.b").unwrap());
        assert_eq!(texts(&filter), ["a.b"]);
        assert_eq!(Filter::default().patterns_slice().len(), 0);
    }
}
