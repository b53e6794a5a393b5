//! The domain events of an agent platform, as one event type for one bus.
//!
//! One enum, so that every event travels on one `Bus<AgentEvent>` and one
//! `#[derive(Event)]` checks all 38 topics together: each against the topic
//! rules and, across domains, against each other. Variants are named
//! `DomainWhat`; each names its topic `domain.what` itself, so the table
//! below reads as the taxonomy. (An enum per domain with
//! `#[event(prefix = "plan")]` is shorter, but one bus carries one type.)
//!
//! Large payloads are `Arc`s, as fan-out clones the event once per
//! subscriber.

use std::{fmt, sync::Arc};

use evbus::Event;

/// The domains, the first segment of every topic; `{domain}.*` is each
/// domain's pattern.
pub(crate) const DOMAINS: [&str; 12] = [
    "plan",
    "decision",
    "invariant",
    "actor",
    "tool",
    "resource",
    "sandbox",
    "checkpoint",
    "context",
    "validation",
    "session",
    "budget",
];

/// Everything that happens on the agent platform.
#[derive(Debug, Clone, PartialEq, Event)]
pub(crate) enum AgentEvent {
    // plan: what the agent means to do, and how far it got.
    /// A plan was drafted for a goal.
    #[event(topic = "plan.created")]
    PlanCreated { plan: u64, goal: String },
    /// A plan moved to another phase.
    #[event(topic = "plan.phase_changed")]
    PlanPhaseChanged {
        plan: u64,
        from: &'static str,
        to: &'static str,
    },
    #[event(topic = "plan.state_changed")]
    PlanStateChanged { plan: u64, state: &'static str },
    #[event(topic = "plan.applied")]
    PlanApplied { plan: u64, changes: u32 },
    #[event(topic = "plan.cancelled")]
    PlanCancelled { plan: u64, reason: String },
    #[event(topic = "plan.errored")]
    PlanErrored { plan: u64, error: String },

    // decision: choices made on the way, and their corrections.
    #[event(topic = "decision.created")]
    DecisionCreated {
        decision: u64,
        plan: u64,
        summary: String,
    },
    #[event(topic = "decision.approved")]
    DecisionApproved { decision: u64, by: String },
    #[event(topic = "decision.corrected")]
    DecisionCorrected { decision: u64, correction: String },
    #[event(topic = "decision.superseded")]
    DecisionSuperseded { decision: u64, by_decision: u64 },

    // invariant: rules the platform keeps.
    #[event(topic = "invariant.reconciled")]
    InvariantReconciled { invariant: &'static str },
    #[event(topic = "invariant.violated")]
    InvariantViolated {
        invariant: &'static str,
        detail: String,
    },
    #[event(topic = "invariant.enforced")]
    InvariantEnforced {
        invariant: &'static str,
        action: String,
    },

    // actor: the agents and people a plan calls on.
    #[event(topic = "actor.invoked")]
    ActorInvoked { actor: &'static str, call: u64 },
    #[event(topic = "actor.completed")]
    ActorCompleted { actor: &'static str, call: u64 },
    #[event(topic = "actor.errored")]
    ActorErrored {
        actor: &'static str,
        call: u64,
        error: String,
    },
    #[event(topic = "actor.escalated")]
    ActorEscalated {
        actor: &'static str,
        call: u64,
        to: &'static str,
    },

    // tool: calls into tools.
    #[event(topic = "tool.invoked")]
    ToolInvoked { tool: &'static str, call: u64 },
    #[event(topic = "tool.completed")]
    ToolCompleted {
        tool: &'static str,
        call: u64,
        output_bytes: u64,
    },
    #[event(topic = "tool.errored")]
    ToolErrored {
        tool: &'static str,
        call: u64,
        error: String,
    },
    #[event(topic = "tool.retried")]
    ToolRetried {
        tool: &'static str,
        call: u64,
        attempt: u32,
    },

    // resource: files, documents and records the agent touches.
    #[event(topic = "resource.accessed")]
    ResourceAccessed { uri: String },
    #[event(topic = "resource.modified")]
    ResourceModified { uri: String, bytes: u64 },
    #[event(topic = "resource.indexed")]
    ResourceIndexed { uri: String, chunks: u32 },

    // sandbox: where changes are tried before they are kept.
    #[event(topic = "sandbox.created")]
    SandboxCreated { sandbox: u64 },
    #[event(topic = "sandbox.committed")]
    SandboxCommitted { sandbox: u64, files: u32 },
    #[event(topic = "sandbox.rolled_back")]
    SandboxRolledBack { sandbox: u64, reason: String },

    // checkpoint: saved states to go back to.
    #[event(topic = "checkpoint.created")]
    CheckpointCreated { checkpoint: u64, sandbox: u64 },
    #[event(topic = "checkpoint.restored")]
    CheckpointRestored { checkpoint: u64 },

    // context: what the model is shown.
    #[event(topic = "context.built")]
    ContextBuilt { session: u64, tokens: u32 },
    #[event(topic = "context.query_executed")]
    ContextQueryExecuted {
        session: u64,
        query: String,
        hits: u32,
    },

    // validation: checks that a plan's result holds.
    #[event(topic = "validation.started")]
    ValidationStarted { plan: u64, checks: u32 },
    #[event(topic = "validation.passed")]
    ValidationPassed { plan: u64 },
    #[event(topic = "validation.failed")]
    ValidationFailed { plan: u64, failed: Vec<String> },

    // session: a user's conversation with the agent.
    #[event(topic = "session.created")]
    SessionCreated { session: u64, user: String },
    /// A message, shared rather than copied to every subscriber.
    #[event(topic = "session.message_sent")]
    SessionMessageSent { session: u64, text: Arc<str> },

    // budget: what a session may spend.
    #[event(topic = "budget.warning")]
    BudgetWarning {
        session: u64,
        spent_cents: u64,
        limit_cents: u64,
    },
    #[event(topic = "budget.exceeded")]
    BudgetExceeded {
        session: u64,
        spent_cents: u64,
        limit_cents: u64,
    },
}

/// One log line: the topic, then the payload.
impl fmt::Display for AgentEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use evbus::EventKind;

        write!(f, "{:<24}", self.kind().topic())?;
        match self {
            Self::PlanCreated { plan, goal } => write!(f, "plan {plan}: {goal}"),
            Self::PlanPhaseChanged { plan, from, to } => write!(f, "plan {plan}: {from} -> {to}"),
            Self::PlanStateChanged { plan, state } => write!(f, "plan {plan}: {state}"),
            Self::PlanApplied { plan, changes } => write!(f, "plan {plan}: {changes} changes"),
            Self::PlanCancelled { plan, reason }
            | Self::PlanErrored {
                plan,
                error: reason,
            } => {
                write!(f, "plan {plan}: {reason}")
            }
            Self::DecisionCreated {
                decision,
                plan,
                summary,
            } => write!(f, "decision {decision} (plan {plan}): {summary}"),
            Self::DecisionApproved { decision, by } => write!(f, "decision {decision} by {by}"),
            Self::DecisionCorrected {
                decision,
                correction,
            } => write!(f, "decision {decision}: {correction}"),
            Self::DecisionSuperseded {
                decision,
                by_decision,
            } => write!(f, "decision {decision} by decision {by_decision}"),
            Self::InvariantReconciled { invariant } => f.write_str(invariant),
            Self::InvariantViolated {
                invariant,
                detail: text,
            }
            | Self::InvariantEnforced {
                invariant,
                action: text,
            } => write!(f, "{invariant}: {text}"),
            Self::ActorInvoked { actor, call } | Self::ActorCompleted { actor, call } => {
                write!(f, "{actor} call {call}")
            }
            Self::ActorErrored { actor, call, error } => write!(f, "{actor} call {call}: {error}"),
            Self::ActorEscalated { actor, call, to } => write!(f, "{actor} call {call} -> {to}"),
            Self::ToolInvoked { tool, call } => write!(f, "{tool} call {call}"),
            Self::ToolCompleted {
                tool,
                call,
                output_bytes,
            } => write!(f, "{tool} call {call}: {output_bytes} bytes"),
            Self::ToolErrored { tool, call, error } => write!(f, "{tool} call {call}: {error}"),
            Self::ToolRetried {
                tool,
                call,
                attempt,
            } => write!(f, "{tool} call {call}: attempt {attempt}"),
            Self::ResourceAccessed { uri } => f.write_str(uri),
            Self::ResourceModified { uri, bytes } => write!(f, "{uri}: {bytes} bytes"),
            Self::ResourceIndexed { uri, chunks } => write!(f, "{uri}: {chunks} chunks"),
            Self::SandboxCreated { sandbox } => write!(f, "sandbox {sandbox}"),
            Self::SandboxCommitted { sandbox, files } => {
                write!(f, "sandbox {sandbox}: {files} files")
            }
            Self::SandboxRolledBack { sandbox, reason } => write!(f, "sandbox {sandbox}: {reason}"),
            Self::CheckpointCreated {
                checkpoint,
                sandbox,
            } => write!(f, "checkpoint {checkpoint} of sandbox {sandbox}"),
            Self::CheckpointRestored { checkpoint } => write!(f, "checkpoint {checkpoint}"),
            Self::ContextBuilt { session, tokens } => {
                write!(f, "session {session}: {tokens} tokens")
            }
            Self::ContextQueryExecuted {
                session,
                query,
                hits,
            } => write!(f, "session {session}: {query:?}, {hits} hits"),
            Self::ValidationStarted { plan, checks } => write!(f, "plan {plan}: {checks} checks"),
            Self::ValidationPassed { plan } => write!(f, "plan {plan}"),
            Self::ValidationFailed { plan, failed } => {
                write!(f, "plan {plan}: {}", failed.join(", "))
            }
            Self::SessionCreated { session, user } => write!(f, "session {session} for {user}"),
            Self::SessionMessageSent { session, text } => write!(f, "session {session}: {text}"),
            Self::BudgetWarning {
                session,
                spent_cents,
                limit_cents,
            }
            | Self::BudgetExceeded {
                session,
                spent_cents,
                limit_cents,
            } => write!(f, "session {session}: {spent_cents} of {limit_cents} cents"),
        }
    }
}
