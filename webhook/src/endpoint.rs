//! Endpoints: where events go, who gets which, and how hard to try.

use std::{num::NonZeroU32, time::Duration};

use evbus_core::{Envelope, Pattern};
use evbus_dispatch::RetryPolicy;

use crate::{breaker::BreakerPolicy, sign::Secret};

/// The longest endpoint name accepted.
pub const MAX_ENDPOINT_NAME: usize = 128;

/// A token bucket: `per_second` requests a second on average, bursts of
/// up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// The sustained rate.
    pub per_second: NonZeroU32,
    /// The bucket's size.
    pub burst: NonZeroU32,
}

impl RateLimit {
    /// `per_second` a second, with a burst of the same size.
    pub fn per_second(per_second: NonZeroU32) -> Self {
        Self {
            per_second,
            burst: per_second,
        }
    }

    /// The same rate with a burst of `burst`.
    #[must_use]
    pub fn burst(mut self, burst: NonZeroU32) -> Self {
        self.burst = burst;
        self
    }
}

/// Which events an endpoint receives: a topic pattern matches, and the
/// envelope's tenant and tags satisfy the filter.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    patterns: Vec<Pattern>,
    tenant: Option<String>,
    all_tags: Vec<String>,
    any_tags: Vec<String>,
}

impl EventFilter {
    /// Whether `envelope` passes: its topic matches one of the patterns
    /// (any topic when there are none), its tenant equals the filter's
    /// tenant (when set; an envelope without a tenant fails), it has every
    /// tag of `all_tags`, and at least one of `any_tags` (when set).
    pub fn matches<T>(&self, envelope: &Envelope<T>) -> bool {
        (self.patterns.is_empty() || self.patterns.iter().any(|p| p.matches(envelope.topic())))
            && self
                .tenant
                .as_deref()
                .is_none_or(|t| envelope.tenant() == Some(t))
            && self.all_tags.iter().all(|t| envelope.has_tag(t))
            && (self.any_tags.is_empty() || self.any_tags.iter().any(|t| envelope.has_tag(t)))
    }

    /// The topic patterns.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// The tenant, if the filter has one.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }
}

/// An endpoint's configuration. Build one with [`Endpoint::builder`].
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub(crate) name: String,
    pub(crate) url: reqwest::Url,
    pub(crate) secrets: Vec<Secret>,
    pub(crate) filter: EventFilter,
    pub(crate) rate_limit: Option<RateLimit>,
    pub(crate) timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) max_retry_after: Duration,
    pub(crate) breaker: BreakerPolicy,
    pub(crate) queue: usize,
    pub(crate) concurrency: usize,
}

/// Why an endpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The name is empty, too long or not made of `[A-Za-z0-9_.-]`.
    #[error("endpoint name {0:?} must be 1 to 128 characters of [A-Za-z0-9_.-]")]
    BadName(String),
    /// The URL does not parse or is not `http`/`https`.
    #[error("endpoint URL {0:?} is not an http or https URL")]
    BadUrl(String),
    /// No signing secret.
    #[error("endpoint has no signing secret")]
    NoSecret,
    /// A zero timeout, queue or concurrency.
    #[error("{0} must be non-zero")]
    Zero(&'static str),
    /// An endpoint with this name is already registered.
    #[error("endpoint {0:?} is already registered")]
    Exists(String),
}

impl Endpoint {
    /// An endpoint named `name` (unique among the registered ones; it
    /// labels metrics and journal records) delivering to `url`.
    pub fn builder(name: &str, url: &str) -> EndpointBuilder {
        EndpointBuilder {
            name: name.to_owned(),
            url: url.to_owned(),
            secrets: Vec::new(),
            filter: EventFilter::default(),
            rate_limit: None,
            timeout: Duration::from_secs(10),
            retry: default_retry(),
            max_retry_after: Duration::from_secs(300),
            breaker: BreakerPolicy::default(),
            queue: 100_000,
            concurrency: 64,
        }
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// The filter.
    pub fn filter(&self) -> &EventFilter {
        &self.filter
    }

    /// The retry policy.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The circuit breaker's policy.
    pub fn breaker(&self) -> &BreakerPolicy {
        &self.breaker
    }
}

/// The default retry policy of an endpoint: the first attempt and 3
/// retries, 500 ms base, factor 2, at most 30 s, 20 % jitter.
pub fn default_retry() -> RetryPolicy {
    match RetryPolicy::builder()
        .max_attempts(4)
        .base(Duration::from_millis(500))
        .factor(2.0)
        .max_delay(Duration::from_secs(30))
        .jitter(0.2)
        .build()
    {
        Ok(p) => p,
        Err(_) => unreachable!("the default retry policy is valid"),
    }
}

/// Builds an [`Endpoint`].
#[derive(Debug, Clone)]
pub struct EndpointBuilder {
    name: String,
    url: String,
    secrets: Vec<Secret>,
    filter: EventFilter,
    rate_limit: Option<RateLimit>,
    timeout: Duration,
    retry: RetryPolicy,
    max_retry_after: Duration,
    breaker: BreakerPolicy,
    queue: usize,
    concurrency: usize,
}

impl EndpointBuilder {
    /// Signs with `secret`. Called more than once (a rotation), requests
    /// carry one signature per secret.
    #[must_use]
    pub fn secret(mut self, secret: Secret) -> Self {
        self.secrets.push(secret);
        self
    }

    /// Receives events whose topic matches `pattern` (any topic when no
    /// pattern is given).
    #[must_use]
    pub fn topic(mut self, pattern: Pattern) -> Self {
        self.filter.patterns.push(pattern);
        self
    }

    /// Receives only events of this tenant.
    #[must_use]
    pub fn tenant(mut self, tenant: &str) -> Self {
        self.filter.tenant = Some(tenant.to_owned());
        self
    }

    /// Receives only events that carry `tag` (all such tags are required).
    #[must_use]
    pub fn all_tag(mut self, tag: &str) -> Self {
        self.filter.all_tags.push(tag.to_owned());
        self
    }

    /// Receives only events that carry at least one tag given this way.
    #[must_use]
    pub fn any_tag(mut self, tag: &str) -> Self {
        self.filter.any_tags.push(tag.to_owned());
        self
    }

    /// A token-bucket rate limit on requests (none by default).
    #[must_use]
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// The time one attempt may take (default 10 s), on the injected clock.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The retry policy (default [`default_retry`]).
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The longest `Retry-After` honoured (default 300 s); a longer one is
    /// cut to this.
    #[must_use]
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// The circuit breaker's policy.
    #[must_use]
    pub fn breaker(mut self, breaker: BreakerPolicy) -> Self {
        self.breaker = breaker;
        self
    }

    /// Events waiting for this endpoint before new ones are dead-lettered
    /// as `queue full` (default 100 000).
    #[must_use]
    pub fn queue(mut self, queue: usize) -> Self {
        self.queue = queue;
        self
    }

    /// Requests in flight at once to this endpoint (default 64).
    #[must_use]
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Validates the configuration.
    pub fn build(self) -> Result<Endpoint, EndpointError> {
        if self.name.is_empty()
            || self.name.len() > MAX_ENDPOINT_NAME
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err(EndpointError::BadName(self.name));
        }
        let url = reqwest::Url::parse(&self.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| EndpointError::BadUrl(self.url.clone()))?;
        if self.secrets.is_empty() {
            return Err(EndpointError::NoSecret);
        }
        if self.timeout.is_zero() {
            return Err(EndpointError::Zero("timeout"));
        }
        if self.queue == 0 {
            return Err(EndpointError::Zero("queue"));
        }
        if self.concurrency == 0 {
            return Err(EndpointError::Zero("concurrency"));
        }
        Ok(Endpoint {
            name: self.name,
            url,
            secrets: self.secrets,
            filter: self.filter,
            rate_limit: self.rate_limit,
            timeout: self.timeout,
            retry: self.retry,
            max_retry_after: self.max_retry_after,
            breaker: self.breaker,
            queue: self.queue,
            concurrency: self.concurrency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> EndpointBuilder {
        Endpoint::builder("billing", "http://127.0.0.1:9/hook").secret(Secret::generate())
    }

    #[test]
    fn filters_by_topic_tenant_and_tags() {
        let e = ep()
            .topic(Pattern::parse("plugins.>").unwrap())
            .tenant("acme")
            .all_tag("release")
            .any_tag("stable")
            .any_tag("beta")
            .build()
            .unwrap();
        let ok = Envelope::on("plugins.released", 1u8)
            .unwrap()
            .with_tenant("acme")
            .with_tag("release")
            .with_tag("beta");
        assert!(e.filter().matches(&ok));
        assert!(!e.filter().matches(&ok.clone().with_tenant("other")));
        let no_tenant = Envelope::on("plugins.released", 1u8)
            .unwrap()
            .with_tag("release")
            .with_tag("beta");
        assert!(!e.filter().matches(&no_tenant));
        let wrong_topic = Envelope::on("orders.placed", 1u8)
            .unwrap()
            .with_tenant("acme")
            .with_tag("release")
            .with_tag("beta");
        assert!(!e.filter().matches(&wrong_topic));
        let missing_all = Envelope::on("plugins.released", 1u8)
            .unwrap()
            .with_tenant("acme")
            .with_tag("beta");
        assert!(!e.filter().matches(&missing_all));
        let missing_any = Envelope::on("plugins.released", 1u8)
            .unwrap()
            .with_tenant("acme")
            .with_tag("release");
        assert!(!e.filter().matches(&missing_any));
        // No filter: everything.
        assert!(ep().build().unwrap().filter().matches(&missing_any));
    }

    #[test]
    fn bad_configurations_are_typed_errors() {
        assert!(matches!(
            Endpoint::builder("a b", "http://x/")
                .secret(Secret::generate())
                .build(),
            Err(EndpointError::BadName(_))
        ));
        assert!(matches!(
            Endpoint::builder("a", "ftp://x/")
                .secret(Secret::generate())
                .build(),
            Err(EndpointError::BadUrl(_))
        ));
        assert_eq!(
            Endpoint::builder("a", "http://x/").build().unwrap_err(),
            EndpointError::NoSecret
        );
        assert_eq!(
            ep().timeout(Duration::ZERO).build().unwrap_err(),
            EndpointError::Zero("timeout")
        );
        assert_eq!(default_retry().max_attempts(), 4);
    }
}
