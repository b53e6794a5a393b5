//! `evbus replay --to nats://..`: envelopes published on a local bus that
//! an evbus-nats bridge exports to a JetStream stream.

use std::time::Duration;

use evbus_core::{Bus, Envelope, Event, EventKind, PublishError, PublishReport};
use evbus_journal::ReplayTarget;
use evbus_nats::{Bridge, BridgeConfig};
use serde_json::Value;

use crate::{error::CliError, ui::Ui};

/// A payload of any shape, so a bus can carry recorded envelopes whose
/// type this command does not know. Every publish names its topic (the
/// recorded one); the one kind is never published by.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct Payload(pub(crate) Value);

/// [`Payload`]'s only kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AnyKind;

impl EventKind for AnyKind {
    const ALL: &'static [Self] = &[AnyKind];

    fn topic(self) -> &'static str {
        "evbus.cli.replay"
    }

    fn index(self) -> usize {
        0
    }
}

impl Event for Payload {
    type Kind = AnyKind;

    fn kind(&self) -> AnyKind {
        AnyKind
    }
}

/// How long the end of a replay waits for the server's acknowledgements.
const FLUSH: Duration = Duration::from_secs(60);

/// The bus the replay publishes on, and the bridge that exports it.
pub(crate) struct ReplaySink {
    /// `None` in a dry run: nothing connects.
    live: Option<(tokio::runtime::Runtime, Bridge<Payload>)>,
    bus: Bus<Envelope<Payload>>,
    url: String,
    stream: String,
}

impl ReplaySink {
    /// Connects a bridge to `url` that exports everything on the bus to
    /// `stream` under `prefix` (not in a dry run).
    pub(crate) fn start(
        url: &str,
        stream: &str,
        prefix: &str,
        dry_run: bool,
    ) -> Result<ReplaySink, CliError> {
        if !url.starts_with("nats://") {
            return Err(CliError::usage(format!("--to {url}: not a nats:// URL"))
                .hint("pass the server's URL, like nats://127.0.0.1:4222"));
        }
        let bus = Bus::<Envelope<Payload>>::new();
        let live = if dry_run {
            None
        } else {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| {
                    CliError::failure(format!("cannot start the bridge's runtime: {e}"))
                })?;
            let config = BridgeConfig::new(stream).prefix(prefix).export(">");
            let bridge = runtime
                .block_on(Bridge::connect(url, &bus, config))
                .map_err(|e| {
                    CliError::failure(format!("cannot bridge to {url} (stream {stream}): {e}")).hint(
                        "check that nats-server runs there with JetStream (-js), and that --stream and --prefix agree with an existing stream",
                    )
                })?;
            Some((runtime, bridge))
        };
        Ok(ReplaySink {
            live,
            bus,
            url: url.to_owned(),
            stream: stream.to_owned(),
        })
    }

    /// Waits for the server to acknowledge everything, stops the bridge
    /// and reports; an error if anything was not stored.
    pub(crate) fn finish(self, ui: Ui) -> Result<(), CliError> {
        let Some((runtime, bridge)) = self.live else {
            return Ok(());
        };
        let flushed = runtime.block_on(bridge.flush(FLUSH));
        let stats = runtime.block_on(bridge.shutdown(Duration::from_secs(5)));
        let e = &stats.export;
        if !ui.quiet {
            eprintln!(
                "nats {} stream {}: sent {}, acknowledged {}, retried {}, duplicates dropped by the server {}, failed {}, abandoned at shutdown {}",
                self.url,
                self.stream,
                e.sent,
                e.acked,
                e.retried,
                e.deduplicated,
                e.failed + e.oversized + e.lost,
                e.abandoned
            );
        }
        if let Err(timeout) = flushed {
            return Err(CliError::failure(format!(
                "the server did not acknowledge {} envelopes within {} s",
                timeout.outstanding,
                FLUSH.as_secs()
            ))
            .hint("check the server's health (nats server check); a replay again is safe: the server drops ids it already stored within its duplicate window"));
        }
        // Abandoned: given up when the shutdown ran out of time, so not
        // stored either.
        let failed = e.failed + e.oversized + e.lost + e.abandoned;
        if failed > 0 {
            return Err(CliError::failure(format!(
                "{failed} envelopes were not stored in {}",
                self.stream
            )));
        }
        Ok(())
    }
}

impl ReplayTarget<Value> for ReplaySink {
    fn publish_envelope(
        &mut self,
        envelope: Envelope<Value>,
    ) -> Result<PublishReport, PublishError<Envelope<Value>>> {
        if self.live.is_none() {
            return Ok(PublishReport::default());
        }
        // The bridge's lossless subscription takes it (a full ring waits
        // for the export), on the envelope's own topic.
        let topic = envelope.topic().to_owned();
        self.bus
            .publish_to(&topic, envelope.map(Payload))
            .map_err(|e| match e {
                PublishError::InvalidTopic(e, why) => {
                    PublishError::InvalidTopic(e.map(|p| p.0), why)
                }
                // Closed, or one that cannot happen on this bus: stop.
                other => PublishError::Closed(other.into_inner().map(|p| p.0)),
            })
    }

    fn is_closed(&self) -> bool {
        self.bus.is_shut_down()
    }
}
