//! An agent platform's events on one bus, with `#[derive(Event)]`.
//!
//! ```text
//! cargo run -p evbus --example agent_events
//! ```
//!
//! The taxonomy (`taxonomy.rs`) is one enum of 38 events in 12 domains;
//! the derive writes its kind enum and checks its topics at compile time.
//! An agent thread runs two sessions. The first builds context, plans,
//! calls tools (one fails and is retried), validates, commits its sandbox
//! and runs out of budget. The second fails: its validation fails, its
//! actor errs and escalates, its sandbox rolls back to a checkpoint and its
//! plan is cancelled. Four subscribers, each on its own thread, watch them
//! the four ways a subscription can choose events:
//!
//! - `log` takes everything, `>`, and prints each event;
//! - `planner` takes one domain, `plan.*`;
//! - `tools` takes the tool domain with a tail pattern, `tool.>`;
//! - `pager` takes kinds, not patterns: the three `errored` kinds and
//!   `budget.exceeded`.
//!
//! Then the bus shuts down, each subscriber drains and reports, and the
//! process exits non-zero if any saw other than what its filter selects.

mod taxonomy;

use std::{process::ExitCode, sync::Arc, thread};

use evbus::{Bus, Event, EventKind, Pattern, Subscription};

use crate::taxonomy::{AgentEvent, AgentEventKind, DOMAINS};

/// The events of a session that succeeds, in the order the agent publishes
/// them.
#[rustfmt::skip] // One event a line: the script reads as a timeline.
fn session() -> Vec<AgentEvent> {
    use AgentEvent::*;

    let (session, plan, sandbox) = (41, 7, 3);
    vec![
        SessionCreated { session, user: "ada".into() },
        SessionMessageSent { session, text: Arc::from("rename the billing module") },
        ContextBuilt { session, tokens: 18_240 },
        ContextQueryExecuted { session, query: "mod billing".into(), hits: 12 },
        ResourceAccessed { uri: "repo://src/billing/mod.rs".into() },
        PlanCreated { plan, goal: "rename billing to invoicing".into() },
        DecisionCreated { decision: 1, plan, summary: "keep a re-export for one release".into() },
        DecisionApproved { decision: 1, by: "ada".into() },
        PlanPhaseChanged { plan, from: "drafting", to: "executing" },
        SandboxCreated { sandbox },
        CheckpointCreated { checkpoint: 1, sandbox },
        ActorInvoked { actor: "refactorer", call: 1 },
        ToolInvoked { tool: "rename", call: 1 },
        ToolErrored { tool: "rename", call: 1, error: "file locked".into() },
        ToolRetried { tool: "rename", call: 1, attempt: 2 },
        ToolCompleted { tool: "rename", call: 1, output_bytes: 5_120 },
        ResourceModified { uri: "repo://src/invoicing/mod.rs".into(), bytes: 9_876 },
        ResourceIndexed { uri: "repo://src/invoicing/mod.rs".into(), chunks: 14 },
        ActorCompleted { actor: "refactorer", call: 1 },
        InvariantViolated { invariant: "public-api-stable", detail: "billing::Invoice gone".into() },
        DecisionCorrected { decision: 1, correction: "re-export billing::Invoice".into() },
        InvariantEnforced { invariant: "public-api-stable", action: "re-export added".into() },
        InvariantReconciled { invariant: "public-api-stable" },
        PlanPhaseChanged { plan, from: "executing", to: "validating" },
        ValidationStarted { plan, checks: 3 },
        ValidationPassed { plan },
        SandboxCommitted { sandbox, files: 9 },
        PlanApplied { plan, changes: 9 },
        PlanStateChanged { plan, state: "done" },
        BudgetWarning { session, spent_cents: 410, limit_cents: 500 },
        BudgetExceeded { session, spent_cents: 512, limit_cents: 500 },
    ]
}

/// The events of a session whose plan fails and is cancelled.
#[rustfmt::skip] // As `session`.
fn failed_session() -> Vec<AgentEvent> {
    use AgentEvent::*;

    let (session, plan, sandbox) = (42, 8, 4);
    vec![
        SessionCreated { session, user: "grace".into() },
        PlanCreated { plan, goal: "upgrade the tls crate".into() },
        DecisionCreated { decision: 2, plan, summary: "bump to the next major".into() },
        SandboxCreated { sandbox },
        CheckpointCreated { checkpoint: 2, sandbox },
        ActorInvoked { actor: "upgrader", call: 2 },
        ValidationStarted { plan, checks: 3 },
        ValidationFailed { plan, failed: vec!["handshake".into(), "cert-reload".into()] },
        ActorErrored { actor: "upgrader", call: 2, error: "2 checks failed".into() },
        ActorEscalated { actor: "upgrader", call: 2, to: "grace" },
        SandboxRolledBack { sandbox, reason: "validation failed".into() },
        CheckpointRestored { checkpoint: 2 },
        DecisionCreated { decision: 3, plan, summary: "stay on the current major".into() },
        DecisionSuperseded { decision: 2, by_decision: 3 },
        PlanErrored { plan, error: "upgrade breaks the handshake".into() },
        PlanCancelled { plan, reason: "superseded by decision 3".into() },
    ]
}

/// A subscriber on its own thread: receives until the bus shuts down, and
/// returns what it saw.
fn spawn(
    name: &'static str,
    mut subscription: Subscription<AgentEvent>,
    print: bool,
) -> thread::JoinHandle<(&'static str, Vec<AgentEvent>)> {
    thread::spawn(move || {
        let mut seen = Vec::new();
        for event in subscription.iter() {
            if print {
                println!("{name:>8} | {event}");
            }
            seen.push(event);
        }
        (name, seen)
    })
}

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    println!(
        "{} event kinds in {} domains",
        AgentEventKind::ALL.len(),
        DOMAINS.len()
    );
    let bus = Bus::<AgentEvent>::new();
    let pager_kinds = [
        AgentEventKind::PlanErrored,
        AgentEventKind::ActorErrored,
        AgentEventKind::ToolErrored,
        AgentEventKind::BudgetExceeded,
    ];
    let subscribers = [
        spawn("log", bus.subscribe(">")?, true),
        spawn("planner", bus.subscribe("plan.*")?, false),
        spawn("tools", bus.subscribe("tool.>")?, false),
        spawn("pager", bus.subscribe_kinds(&pager_kinds)?, false),
    ];

    let script: Vec<AgentEvent> = session().into_iter().chain(failed_session()).collect();
    let agent = {
        let mut publisher = bus.publisher();
        let script = script.clone();
        thread::spawn(move || {
            for event in script {
                publisher.publish(event).expect("the bus is open");
            }
        })
    };
    agent.join().expect("the agent thread panicked");
    bus.shutdown();

    // What each subscriber's filter selects from the script.
    let selects = |name: &str, event: &AgentEvent| -> bool {
        let topic = event.kind().topic();
        match name {
            "log" => true,
            "planner" => Pattern::parse("plan.*").is_ok_and(|p| p.matches(topic)),
            "tools" => Pattern::parse("tool.>").is_ok_and(|p| p.matches(topic)),
            _ => pager_kinds.contains(&event.kind()),
        }
    };
    let mut ok = true;
    println!();
    for subscriber in subscribers {
        let (name, seen) = subscriber.join().expect("a subscriber panicked");
        let expected: Vec<&AgentEvent> = script.iter().filter(|e| selects(name, e)).collect();
        let matches = seen.iter().eq(expected.iter().copied());
        ok &= matches;
        println!(
            "{name:>8}: {:>2} events{}",
            seen.len(),
            if matches {
                ""
            } else {
                "  <- not what its filter selects"
            }
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
