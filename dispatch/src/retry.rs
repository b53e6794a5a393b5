//! Retry policies: capped exponential backoff with jitter.

use std::{fmt, time::Duration};

/// How a failed handler call is retried.
///
/// Attempt `n` (counting the first call as 1) that fails is retried after
/// `min(base × factorⁿ⁻¹, max_delay)`, shortened by up to `jitter` of
/// itself at random. After `max_attempts` calls in all, the event goes to
/// the dead-letter topic.
///
/// A call that panics is not retried unless
/// [`retry_panics`](RetryPolicyBuilder::retry_panics) is set: a panic is
/// usually a bug that the same event will hit again, and while a retry is
/// pending the handler's later events wait in its ring (where they may
/// overflow). By default a panicking event goes to the dead-letter topic at
/// once.
///
/// ```
/// use std::time::Duration;
/// use evbus::dispatch::RetryPolicy;
///
/// let policy = RetryPolicy::builder()
///     .max_attempts(5)
///     .base(Duration::from_millis(10))
///     .factor(2.0)
///     .max_delay(Duration::from_secs(1))
///     .jitter(0.0)
///     .build()?;
/// assert_eq!(policy.delay(1, 0.5), Duration::from_millis(10));
/// assert_eq!(policy.delay(3, 0.5), Duration::from_millis(40));
/// assert_eq!(policy.delay(60, 0.5), Duration::from_secs(1));
/// # Ok::<(), evbus::dispatch::RetryPolicyError>(())
/// ```
///
/// With the `serde` feature, a deserialised policy is validated by the same
/// rules as [`RetryPolicyBuilder::build`]: a policy with 0 attempts, a
/// factor below 1 or a jitter outside `[0, 1]` is an error naming the
/// rule, never a policy.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "RetryPolicyConfig"))]
pub struct RetryPolicy {
    max_attempts: u32,
    base: Duration,
    factor: f64,
    max_delay: Duration,
    jitter: f64,
    /// Absent in policies serialized before it existed: `false`.
    #[cfg_attr(feature = "serde", serde(default))]
    retry_panics: bool,
}

/// A [`RetryPolicy`] as read from configuration, before validation: the
/// same fields, so the serialized form is unchanged.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
struct RetryPolicyConfig {
    max_attempts: u32,
    base: Duration,
    factor: f64,
    max_delay: Duration,
    jitter: f64,
    /// Absent in policies serialized before it existed: `false`.
    #[serde(default)]
    retry_panics: bool,
}

#[cfg(feature = "serde")]
impl TryFrom<RetryPolicyConfig> for RetryPolicy {
    type Error = RetryPolicyError;

    fn try_from(c: RetryPolicyConfig) -> Result<Self, RetryPolicyError> {
        validate(RetryPolicy {
            max_attempts: c.max_attempts,
            base: c.base,
            factor: c.factor,
            max_delay: c.max_delay,
            jitter: c.jitter,
            retry_panics: c.retry_panics,
        })
    }
}

/// The rules of a valid policy, shared by [`RetryPolicyBuilder::build`] and
/// deserialisation: the first rule `p` breaks, or `p`.
fn validate(p: RetryPolicy) -> Result<RetryPolicy, RetryPolicyError> {
    if p.max_attempts == 0 {
        return Err(RetryPolicyError::ZeroAttempts);
    }
    if p.base.is_zero() {
        return Err(RetryPolicyError::ZeroBase);
    }
    if !p.factor.is_finite() || p.factor < 1.0 {
        return Err(RetryPolicyError::FactorBelowOne(p.factor));
    }
    if p.max_delay < p.base {
        return Err(RetryPolicyError::MaxBelowBase {
            base: p.base,
            max: p.max_delay,
        });
    }
    if !(0.0..=1.0).contains(&p.jitter) {
        return Err(RetryPolicyError::JitterOutOfRange(p.jitter));
    }
    Ok(p)
}

impl Default for RetryPolicy {
    /// 3 attempts, 100 ms base, factor 2, at most 10 s, 10 % jitter;
    /// panics are not retried.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base: Duration::from_millis(100),
            factor: 2.0,
            max_delay: Duration::from_secs(10),
            jitter: 0.1,
            retry_panics: false,
        }
    }
}

impl RetryPolicy {
    /// A builder starting from [`RetryPolicy::default`].
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder {
            policy: Self::default(),
        }
    }

    /// No retries: the first failure dead-letters the event.
    pub fn never() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Calls in all, the first included (at least 1).
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The delay before the first retry.
    pub fn base(&self) -> Duration {
        self.base
    }

    /// The growth factor per attempt (at least 1).
    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// The cap on any delay.
    pub fn max_delay(&self) -> Duration {
        self.max_delay
    }

    /// The fraction (0 to 1) by which a delay may be shortened at random.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// Whether a call that panicked is retried like one that returned
    /// `Err` (default `false`: it is dead-lettered at once).
    pub fn retry_panics(&self) -> bool {
        self.retry_panics
    }

    /// The delay after failed attempt `attempt` (1-based), with `unit` (in
    /// `[0, 1)`, clamped) as the random draw for the jitter.
    ///
    /// Never overflows (it saturates at `max_delay`), and is never zero,
    /// because a valid policy has a non-zero base.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(i32::MAX as u32) as i32;
        let cap = self.max_delay.as_secs_f64();
        // f64 arithmetic saturates to +inf rather than wrapping; `min` caps it.
        let raw = (self.base.as_secs_f64() * self.factor.powi(exp)).min(cap);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let jittered = raw * (1.0 - self.jitter * unit);
        let delay = Duration::try_from_secs_f64(jittered).unwrap_or(self.max_delay);
        delay.min(self.max_delay).max(Duration::from_nanos(1))
    }
}

/// Builds a validated [`RetryPolicy`].
#[derive(Debug, Clone)]
pub struct RetryPolicyBuilder {
    policy: RetryPolicy,
}

impl RetryPolicyBuilder {
    /// Calls in all, the first included. Zero is an error.
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.policy.max_attempts = n;
        self
    }

    /// The first retry's delay. Zero is an error.
    #[must_use]
    pub fn base(mut self, base: Duration) -> Self {
        self.policy.base = base;
        self
    }

    /// The growth per attempt. Below 1 (or not finite) is an error.
    #[must_use]
    pub fn factor(mut self, factor: f64) -> Self {
        self.policy.factor = factor;
        self
    }

    /// The cap on any delay. Below `base` is an error.
    #[must_use]
    pub fn max_delay(mut self, max: Duration) -> Self {
        self.policy.max_delay = max;
        self
    }

    /// The random shortening, a fraction in `[0, 1]`.
    #[must_use]
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.policy.jitter = jitter;
        self
    }

    /// Whether a call that panicked is retried like one that returned
    /// `Err`. Default `false`: a panic dead-letters the event at once.
    #[must_use]
    pub fn retry_panics(mut self, retry: bool) -> Self {
        self.policy.retry_panics = retry;
        self
    }

    /// Validates the policy.
    ///
    /// # Errors
    ///
    /// The [`RetryPolicyError`] naming the first rule broken.
    pub fn build(self) -> Result<RetryPolicy, RetryPolicyError> {
        validate(self.policy)
    }
}

/// Why a [`RetryPolicy`] is invalid.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum RetryPolicyError {
    /// `max_attempts` is 0: a handler must be called at least once.
    ZeroAttempts,
    /// `base` is zero: retries would spin.
    ZeroBase,
    /// `factor` is below 1 or not finite: delays would shrink.
    FactorBelowOne(f64),
    /// `max_delay` is below `base`.
    MaxBelowBase {
        /// The base delay.
        base: Duration,
        /// The cap.
        max: Duration,
    },
    /// `jitter` is outside `[0, 1]`.
    JitterOutOfRange(f64),
}

impl fmt::Display for RetryPolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroAttempts => f.write_str("retry policy: max_attempts must be at least 1"),
            Self::ZeroBase => f.write_str("retry policy: base delay must be above zero"),
            Self::FactorBelowOne(x) => {
                write!(
                    f,
                    "retry policy: factor must be a finite number >= 1, got {x}"
                )
            }
            Self::MaxBelowBase { base, max } => write!(
                f,
                "retry policy: max_delay ({max:?}) must not be below base ({base:?})"
            ),
            Self::JitterOutOfRange(x) => {
                write!(f, "retry policy: jitter must be within [0, 1], got {x}")
            }
        }
    }
}

impl std::error::Error for RetryPolicyError {}

/// A small xorshift generator for jitter: no dependency, no shared state.
#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// A draw in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn invalid_policies_are_typed_errors() {
        let b = RetryPolicy::builder;
        assert_eq!(
            b().max_attempts(0).build(),
            Err(RetryPolicyError::ZeroAttempts)
        );
        assert_eq!(
            b().base(Duration::ZERO).build(),
            Err(RetryPolicyError::ZeroBase)
        );
        assert_eq!(
            b().factor(0.5).build(),
            Err(RetryPolicyError::FactorBelowOne(0.5))
        );
        assert!(matches!(
            b().factor(f64::NAN).build(),
            Err(RetryPolicyError::FactorBelowOne(_))
        ));
        assert_eq!(
            b().base(Duration::from_secs(2))
                .max_delay(Duration::from_secs(1))
                .build(),
            Err(RetryPolicyError::MaxBelowBase {
                base: Duration::from_secs(2),
                max: Duration::from_secs(1)
            })
        );
        assert_eq!(
            b().jitter(1.5).build(),
            Err(RetryPolicyError::JitterOutOfRange(1.5))
        );
        assert!(b().build().is_ok());
        assert!(RetryPolicyError::ZeroBase.to_string().contains("base"));
    }

    #[test]
    fn delays_grow_then_cap() {
        let p = RetryPolicy::builder()
            .base(Duration::from_millis(100))
            .factor(3.0)
            .max_delay(Duration::from_secs(2))
            .jitter(0.0)
            .build()
            .unwrap();
        let d: Vec<_> = (1..=5).map(|n| p.delay(n, 0.0)).collect();
        assert_eq!(
            d,
            [100, 300, 900, 2000, 2000]
                .map(Duration::from_millis)
                .to_vec()
        );
        assert_eq!(p.delay(u32::MAX, 0.0), Duration::from_secs(2));
    }

    proptest! {
        #[test]
        fn delays_never_overflow_and_are_never_zero(
            attempts in 1u32..=u32::MAX,
            base_ns in 1u64..=u64::MAX / 2,
            factor in 1.0f64..1e6,
            extra_ns in 0u64..=u64::MAX / 2,
            jitter in 0.0f64..=1.0,
            attempt in 0u32..=u32::MAX,
            unit in proptest::num::f64::ANY,
        ) {
            let base = Duration::from_nanos(base_ns);
            let max = base + Duration::from_nanos(extra_ns);
            let p = RetryPolicy::builder()
                .max_attempts(attempts)
                .base(base)
                .factor(factor)
                .max_delay(max)
                .jitter(jitter)
                .build()
                .unwrap();
            let d = p.delay(attempt, unit);
            prop_assert!(d > Duration::ZERO);
            prop_assert!(d <= max);
        }
    }

    #[test]
    fn panics_are_not_retried_unless_asked() {
        assert!(!RetryPolicy::default().retry_panics());
        assert!(!RetryPolicy::builder().build().unwrap().retry_panics());
        let p = RetryPolicy::builder().retry_panics(true).build().unwrap();
        assert!(p.retry_panics());
        assert_eq!(p.max_attempts(), RetryPolicy::default().max_attempts());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn a_policy_serialized_without_retry_panics_reads_as_false() {
        let p = RetryPolicy::builder().retry_panics(true).build().unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains("\"retry_panics\":true"), "{json}");
        assert_eq!(serde_json::from_str::<RetryPolicy>(&json).unwrap(), p);
        let old = r#"{"max_attempts":5,"base":{"secs":0,"nanos":1000000},"factor":2.0,"max_delay":{"secs":1,"nanos":0},"jitter":0.0}"#;
        let read: RetryPolicy = serde_json::from_str(old).unwrap();
        assert_eq!(read.max_attempts(), 5);
        assert!(!read.retry_panics());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserialising_validates_like_the_builder() {
        let json = |attempts: &str, factor: &str, jitter: &str, base_ms: u64, max_s: u64| {
            format!(
                r#"{{"max_attempts":{attempts},"base":{{"secs":0,"nanos":{}}},"factor":{factor},"max_delay":{{"secs":{max_s},"nanos":0}},"jitter":{jitter}}}"#,
                base_ms * 1_000_000
            )
        };
        let read = |text: String| serde_json::from_str::<RetryPolicy>(&text);
        let ok = read(json("5", "2.0", "0.5", 10, 1)).unwrap();
        assert_eq!(
            ok,
            RetryPolicy::builder()
                .max_attempts(5)
                .base(Duration::from_millis(10))
                .factor(2.0)
                .max_delay(Duration::from_secs(1))
                .jitter(0.5)
                .build()
                .unwrap()
        );
        let cases = [
            (
                json("0", "2.0", "0.5", 10, 1),
                "max_attempts must be at least 1",
            ),
            (
                json("5", "-1.5", "0.5", 10, 1),
                "factor must be a finite number >= 1",
            ),
            (
                json("5", "2.0", "7.5", 10, 1),
                "jitter must be within [0, 1]",
            ),
            (
                json("5", "2.0", "0.5", 0, 1),
                "base delay must be above zero",
            ),
            (json("5", "2.0", "0.5", 10, 0), "max_delay"),
        ];
        for (text, rule) in cases {
            let err = read(text.clone()).expect_err(&text).to_string();
            assert!(err.contains(rule), "{text}: {err}");
        }
    }

    #[test]
    fn jitter_draws_stay_in_range() {
        let mut j = Jitter::new(42);
        for _ in 0..10_000 {
            let u = j.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
