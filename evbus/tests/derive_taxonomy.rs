//! The derive on a real taxonomy: the domain events of an agent platform
//! (the one `examples/agent_events` runs). Every kind is checked against the
//! taxonomy as specified, and every kind is received by a subscription to
//! its exact topic, to its domain (`plan.*`) and to `>`.
//!
//! Single-threaded: every publish is done before the receives, so nothing
//! waits.

// The taxonomy is the example's, so that the example shows what this tests.
#[path = "../examples/agent_events/taxonomy.rs"]
mod taxonomy;

use std::{collections::HashSet, sync::Arc};

use evbus::{Bus, Event, EventKind, Subscription};

use crate::taxonomy::{AgentEvent, AgentEventKind, DOMAINS};

/// The taxonomy as the issue gives it: each domain with its events.
#[rustfmt::skip] // One domain a line, as in the issue.
const SPEC: [(&str, &[&str]); 12] = [
    ("plan", &["created", "phase_changed", "state_changed", "applied", "cancelled", "errored"]),
    ("decision", &["created", "approved", "corrected", "superseded"]),
    ("invariant", &["reconciled", "violated", "enforced"]),
    ("actor", &["invoked", "completed", "errored", "escalated"]),
    ("tool", &["invoked", "completed", "errored", "retried"]),
    ("resource", &["accessed", "modified", "indexed"]),
    ("sandbox", &["created", "committed", "rolled_back"]),
    ("checkpoint", &["created", "restored"]),
    ("context", &["built", "query_executed"]),
    ("validation", &["started", "passed", "failed"]),
    ("session", &["created", "message_sent"]),
    ("budget", &["warning", "exceeded"]),
];

/// An event of each kind. The match has no catch-all, so a kind added to
/// the taxonomy does not compile until it has a sample.
#[rustfmt::skip] // One kind a line.
fn sample(kind: AgentEventKind) -> AgentEvent {
    use AgentEvent as E;
    use AgentEventKind as K;

    let n = kind.index() as u64;
    match kind {
        K::PlanCreated => E::PlanCreated { plan: n, goal: "ship".into() },
        K::PlanPhaseChanged => E::PlanPhaseChanged { plan: n, from: "a", to: "b" },
        K::PlanStateChanged => E::PlanStateChanged { plan: n, state: "done" },
        K::PlanApplied => E::PlanApplied { plan: n, changes: 3 },
        K::PlanCancelled => E::PlanCancelled { plan: n, reason: "moot".into() },
        K::PlanErrored => E::PlanErrored { plan: n, error: "boom".into() },
        K::DecisionCreated => E::DecisionCreated { decision: n, plan: 1, summary: "go".into() },
        K::DecisionApproved => E::DecisionApproved { decision: n, by: "ada".into() },
        K::DecisionCorrected => E::DecisionCorrected { decision: n, correction: "no".into() },
        K::DecisionSuperseded => E::DecisionSuperseded { decision: n, by_decision: n + 1 },
        K::InvariantReconciled => E::InvariantReconciled { invariant: "api" },
        K::InvariantViolated => E::InvariantViolated { invariant: "api", detail: "gone".into() },
        K::InvariantEnforced => E::InvariantEnforced { invariant: "api", action: "fixed".into() },
        K::ActorInvoked => E::ActorInvoked { actor: "coder", call: n },
        K::ActorCompleted => E::ActorCompleted { actor: "coder", call: n },
        K::ActorErrored => E::ActorErrored { actor: "coder", call: n, error: "x".into() },
        K::ActorEscalated => E::ActorEscalated { actor: "coder", call: n, to: "ada" },
        K::ToolInvoked => E::ToolInvoked { tool: "grep", call: n },
        K::ToolCompleted => E::ToolCompleted { tool: "grep", call: n, output_bytes: 9 },
        K::ToolErrored => E::ToolErrored { tool: "grep", call: n, error: "x".into() },
        K::ToolRetried => E::ToolRetried { tool: "grep", call: n, attempt: 2 },
        K::ResourceAccessed => E::ResourceAccessed { uri: format!("r://{n}") },
        K::ResourceModified => E::ResourceModified { uri: format!("r://{n}"), bytes: 1 },
        K::ResourceIndexed => E::ResourceIndexed { uri: format!("r://{n}"), chunks: 2 },
        K::SandboxCreated => E::SandboxCreated { sandbox: n },
        K::SandboxCommitted => E::SandboxCommitted { sandbox: n, files: 4 },
        K::SandboxRolledBack => E::SandboxRolledBack { sandbox: n, reason: "bad".into() },
        K::CheckpointCreated => E::CheckpointCreated { checkpoint: n, sandbox: 1 },
        K::CheckpointRestored => E::CheckpointRestored { checkpoint: n },
        K::ContextBuilt => E::ContextBuilt { session: n, tokens: 100 },
        K::ContextQueryExecuted => E::ContextQueryExecuted { session: n, query: "q".into(), hits: 5 },
        K::ValidationStarted => E::ValidationStarted { plan: n, checks: 2 },
        K::ValidationPassed => E::ValidationPassed { plan: n },
        K::ValidationFailed => E::ValidationFailed { plan: n, failed: vec!["lint".into()] },
        K::SessionCreated => E::SessionCreated { session: n, user: "ada".into() },
        K::SessionMessageSent => E::SessionMessageSent { session: n, text: Arc::from("hi") },
        K::BudgetWarning => E::BudgetWarning { session: n, spent_cents: 80, limit_cents: 100 },
        K::BudgetExceeded => E::BudgetExceeded { session: n, spent_cents: 120, limit_cents: 100 },
    }
}

fn drain(subscription: &mut Subscription<AgentEvent>) -> Vec<AgentEvent> {
    subscription.try_iter().collect()
}

/// The derived kinds are exactly the specified taxonomy, in its order, and
/// form a valid kind table.
#[test]
fn kinds_are_the_taxonomy() {
    let spec: Vec<String> = SPEC
        .iter()
        .flat_map(|(domain, events)| events.iter().map(move |event| format!("{domain}.{event}")))
        .collect();
    let topics: Vec<&str> = AgentEventKind::ALL
        .iter()
        .map(|kind| kind.topic())
        .collect();
    assert_eq!(topics, spec);
    assert_eq!(topics.len(), 38);
    let domains: Vec<&str> = SPEC.iter().map(|(domain, _)| *domain).collect();
    assert_eq!(domains, DOMAINS);

    let distinct: HashSet<AgentEventKind> = AgentEventKind::ALL.iter().copied().collect();
    assert_eq!(distinct.len(), AgentEventKind::ALL.len());
    for (i, &kind) in AgentEventKind::ALL.iter().enumerate() {
        assert_eq!(kind.index(), i, "{kind:?}");
        assert_eq!(sample(kind).kind(), kind);
        // The log line starts with the topic.
        assert!(
            sample(kind).to_string().starts_with(kind.topic()),
            "{kind:?}"
        );
    }
    assert!(Bus::<AgentEvent>::try_new().is_ok());
}

/// Every kind reaches the subscription to its exact topic, the one to its
/// domain and the one to everything, and nothing else reaches them.
#[test]
fn every_kind_by_topic_by_domain_and_by_all() {
    let bus = Bus::<AgentEvent>::new();
    let mut exact: Vec<(AgentEventKind, Subscription<AgentEvent>)> = AgentEventKind::ALL
        .iter()
        .map(|&kind| (kind, bus.subscribe(kind.topic()).unwrap()))
        .collect();
    let mut by_domain: Vec<(&str, Subscription<AgentEvent>)> = DOMAINS
        .iter()
        .map(|&domain| (domain, bus.subscribe(&format!("{domain}.*")).unwrap()))
        .collect();
    let mut all = bus.subscribe(">").unwrap();

    let published: Vec<AgentEvent> = AgentEventKind::ALL.iter().map(|&k| sample(k)).collect();
    for event in &published {
        bus.publish(event.clone()).unwrap();
    }

    for (kind, subscription) in &mut exact {
        assert_eq!(drain(subscription), [sample(*kind)], "{}", kind.topic());
    }
    for (domain, subscription) in &mut by_domain {
        let expected: Vec<AgentEvent> = published
            .iter()
            .filter(|event| event.kind().topic().split('.').next() == Some(*domain))
            .cloned()
            .collect();
        let got = drain(subscription);
        assert!(!got.is_empty(), "{domain}.*");
        assert_eq!(got, expected, "{domain}.*");
    }
    assert_eq!(drain(&mut all), published);
}

/// Kinds select as patterns do: one domain's kinds, through
/// `subscribe_kinds`, receive what `{domain}.*` receives.
#[test]
fn a_domain_by_kinds_is_the_domain_by_pattern() {
    let bus = Bus::<AgentEvent>::new();
    let plan_kinds: Vec<AgentEventKind> = AgentEventKind::ALL
        .iter()
        .copied()
        .filter(|kind| kind.topic().starts_with("plan."))
        .collect();
    assert_eq!(plan_kinds.len(), 6);
    let mut by_kinds = bus.subscribe_kinds(&plan_kinds).unwrap();
    let mut by_pattern = bus.subscribe("plan.*").unwrap();
    for &kind in AgentEventKind::ALL {
        bus.publish(sample(kind)).unwrap();
    }
    let got = drain(&mut by_kinds);
    assert_eq!(got.len(), 6);
    assert_eq!(got, drain(&mut by_pattern));
}
