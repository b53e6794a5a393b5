//! The [`Bridge`]: one connection, the stream, an exporter and importers.

use std::{sync::Arc, time::Duration};

use async_nats::{
    ConnectOptions, Event,
    connection::State,
    jetstream::{
        self,
        consumer::{AckPolicy, DeliverPolicy, pull},
    },
};
use evbus_core::{Bus, Envelope, Filter, SubscribeOptions, Unsubscriber};
use serde::{Serialize, de::DeserializeOwned};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

use crate::{
    config::BridgeConfig,
    dedupe::IdWindow,
    error::{BridgeError, FlushTimeout, StartError, SubjectError},
    export::{Exporter, SubjectMap},
    import,
    setup::ensure_stream,
    state::{BridgeState, BridgeStats, Shared, StatsHandle},
    subject,
    sync::Ordering,
};

/// A running bridge between a local `Bus<Envelope<T>>` and a JetStream
/// stream.
///
/// Made by [`Bridge::connect`]; its tasks run on the tokio runtime that
/// called it, plus one thread that publishes imported events on the bus.
/// [`shutdown`](Bridge::shutdown) stops it after exporting what the export
/// ring holds; dropping it stops every task at once (what is not yet
/// acknowledged is then retried by nobody: the importer's messages are
/// redelivered to the next run; the exporter's unacknowledged events are
/// given up, as a crash would lose them, and counted in
/// [`ExportStats::abandoned`](crate::ExportStats::abandoned), which a
/// [`stats_handle`](Bridge::stats_handle) taken before the drop reads).
///
/// Dropping never waits on the server, even one that hangs: the export
/// subscription goes with the export task, so a local publisher blocked
/// on a full lossless export ring is released and later publishes no
/// longer reach the bridge. Publishes already in flight may or may not
/// be stored by the server (a later importer sees each at most once);
/// nothing is retried. The import delivers nothing more locally: a
/// delivery blocked on a lossless local subscriber ends when that publish
/// returns (and is acknowledged); what the pulls had queued stays
/// unacknowledged, for the server to redeliver to the next run after
/// [`ack_wait`](BridgeConfig::ack_wait).
pub struct Bridge<T> {
    shared: Arc<Shared>,
    client: async_nats::Client,
    stop: watch::Sender<bool>,
    abort: watch::Sender<bool>,
    export: Option<(JoinHandle<()>, Unsubscriber<Envelope<T>>)>,
    pulls: Vec<JoinHandle<()>>,
    acker: Option<JoinHandle<()>>,
    delivery: Option<std::thread::JoinHandle<()>>,
    origin: String,
}

impl<T> std::fmt::Debug for Bridge<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("origin", &self.origin)
            .field("state", &*self.shared.state.borrow())
            .finish_non_exhaustive()
    }
}

impl<T> Bridge<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Connects to `url`, creates or checks the stream, and starts
    /// exporting and importing as `config` says.
    ///
    /// # Errors
    ///
    /// [`StartError`]: a bad prefix or pattern, or one the stream does not
    /// store; a stream that disagrees with the configuration; no server; a
    /// shut-down bus.
    pub async fn connect(
        url: &str,
        bus: &Bus<Envelope<T>>,
        config: BridgeConfig,
    ) -> Result<Self, StartError> {
        Self::connect_with(ConnectOptions::new(), url, bus, config).await
    }

    /// As [`connect`](Bridge::connect), with connection options (TLS,
    /// credentials, ...). The bridge installs its own event callback, to
    /// track its state.
    ///
    /// # Errors
    ///
    /// As [`connect`](Bridge::connect).
    pub async fn connect_with(
        options: ConnectOptions,
        url: &str,
        bus: &Bus<Envelope<T>>,
        config: BridgeConfig,
    ) -> Result<Self, StartError> {
        // Check every subject before touching the server.
        subject::validate_prefix(&config.prefix)?;
        let covered = |filter: String| -> Result<String, SubjectError> {
            if config
                .stream
                .subjects
                .iter()
                .any(|w| subject::covers(w, &filter))
            {
                Ok(filter)
            } else {
                Err(SubjectError::NotInStream {
                    subject: filter,
                    stream: config.stream.name.clone(),
                })
            }
        };
        for pattern in &config.export {
            covered(subject::filter_for(&config.prefix, pattern)?)?;
        }
        let mut filters = Vec::new();
        for spec in &config.import {
            filters.push(covered(subject::filter_for(
                &config.prefix,
                &spec.pattern,
            )?)?);
        }

        let shared = Arc::new(Shared::new(
            IdWindow::new(config.dedupe_window, config.dedupe_capacity),
            config.lag_threshold,
        ));
        let events = Arc::clone(&shared);
        let client = options
            .event_callback(move |event| {
                let shared = Arc::clone(&events);
                async move {
                    match event {
                        Event::Connected => shared.set_connected(true),
                        Event::Disconnected | Event::Closed => shared.set_connected(false),
                        _ => {}
                    }
                }
            })
            .connect(url)
            .await
            .map_err(|e| StartError::Connect(e.to_string()))?;
        if client.connection_state() == State::Connected {
            shared.set_connected(true);
        }
        let mut js = jetstream::new(client.clone());
        js.set_timeout(config.ack_timeout);
        let stream = ensure_stream(&js, &config.stream, config.create_stream).await?;

        let (stop, _) = watch::channel(false);
        let (abort, _) = watch::channel(false);
        let mut bridge = Bridge {
            shared: Arc::clone(&shared),
            client: client.clone(),
            stop,
            abort,
            export: None,
            pulls: Vec::new(),
            acker: None,
            delivery: None,
            origin: config.origin.clone(),
        };

        // The export subscription first: every event published on the bus
        // from here on, imported ones included, reaches its ring.
        if !config.export.is_empty() {
            let filter = Filter::patterns(&config.export).map_err(|e| {
                StartError::Subject(SubjectError::InvalidTopic {
                    topic: config.export.join(" "),
                    reason: e.to_string(),
                })
            })?;
            let sub = bus
                .subscribe_with(
                    filter,
                    SubscribeOptions::new()
                        .capacity(config.export_capacity)
                        .overflow(config.export_mode.overflow())
                        .name("evbus-nats export"),
                )
                .map_err(StartError::Subscribe)?;
            let unsub = sub.unsubscriber();
            let exporter = Exporter {
                sub,
                js,
                client,
                shared: Arc::clone(&shared),
                subjects: SubjectMap::new(
                    &config.prefix,
                    &config.stream.name,
                    &config.stream.subjects,
                ),
                origin: config.origin.clone(),
                max_in_flight: config.max_in_flight,
                max_retries: config.max_retries,
                backoff: config.retry_backoff,
                ack_timeout: config.ack_timeout,
                imports: !config.import.is_empty(),
                max_payload: 0,
                since_info: 0,
            };
            let task =
                tokio::spawn(exporter.run(bridge.stop.subscribe(), bridge.abort.subscribe()));
            bridge.export = Some((task, unsub));
        } else {
            shared.export_ended.send_replace(true);
        }
        if !config.import.is_empty() {
            let mut consumers = Vec::new();
            for (spec, filter) in config.import.iter().zip(filters) {
                let consumer: jetstream::consumer::PullConsumer = stream
                    .get_or_create_consumer(
                        &spec.durable,
                        pull::Config {
                            durable_name: Some(spec.durable.clone()),
                            filter_subject: filter,
                            ack_policy: AckPolicy::Explicit,
                            ack_wait: config.ack_wait,
                            max_ack_pending: i64::try_from(config.max_ack_pending)
                                .unwrap_or(i64::MAX),
                            deliver_policy: DeliverPolicy::All,
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(|e| StartError::Consumer(e.to_string()))?;
                consumers.push(consumer);
            }
            let (tx, rx) = mpsc::channel(config.pull_batch);
            let (ack_tx, ack_rx) = mpsc::unbounded_channel();
            let seen = IdWindow::new(config.dedupe_window, config.dedupe_capacity);
            let bus = bus.clone();
            let s = Arc::clone(&shared);
            bridge.delivery = Some(
                std::thread::Builder::new()
                    .name("evbus-nats-import".into())
                    .spawn(move || import::deliver(bus, rx, ack_tx, seen, s))
                    .map_err(|e| StartError::Consumer(format!("delivery thread: {e}")))?,
            );
            bridge.acker = Some(tokio::spawn(import::ack(ack_rx, Arc::clone(&shared))));
            for consumer in consumers {
                bridge.pulls.push(tokio::spawn(import::pull(
                    consumer,
                    config.prefix.clone(),
                    config.origin.clone(),
                    config.pull_batch,
                    Arc::clone(&shared),
                    tx.clone(),
                    bridge.stop.subscribe(),
                )));
            }
        }

        shared.refresh();
        Ok(bridge)
    }
}

impl<T> Bridge<T> {
    /// The state now.
    pub fn state(&self) -> BridgeState {
        self.shared.refresh();
        *self.shared.state.borrow()
    }

    /// A receiver that sees every change of state (connected, reconnecting,
    /// lagging, closed).
    pub fn watch_state(&self) -> watch::Receiver<BridgeState> {
        self.shared.state.subscribe()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> BridgeStats {
        let mut stats = self.shared.snapshot();
        if let Some((_, unsub)) = &self.export {
            stats.export.backlog = unsub.len() as u64;
        }
        stats
    }

    /// A handle on the counters that outlives the bridge: after dropping
    /// it, [`StatsHandle::export_ended`] says when the export task has
    /// counted what it gave up ([`ExportStats::abandoned`](crate::ExportStats::abandoned)).
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Takes the errors reported since the last call (at most the last 256):
    /// events the exporter could not publish, messages the importer
    /// rejected.
    pub fn take_errors(&self) -> Vec<BridgeError> {
        let mut errors = self.shared.errors.lock().unwrap_or_else(|p| p.into_inner());
        errors.drain(..).collect()
    }

    /// This bridge's origin (the `Evbus-Origin` header of what it exports).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The NATS client, for requests of your own.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Waits until every event that reached the export ring before this
    /// call is resolved: acknowledged by the server, or reported (oversized,
    /// failed), or skipped (imported here).
    ///
    /// # Errors
    ///
    /// [`FlushTimeout`] after `timeout`, with the count still outstanding.
    pub async fn flush(&self, timeout: Duration) -> Result<(), FlushTimeout> {
        let Some((_, unsub)) = &self.export else {
            return Ok(());
        };
        let target = unsub.stats().delivered;
        let mut progress = self.shared.progress.subscribe();
        let resolved = &self.shared.export.resolved;
        let wait = progress.wait_for(|_| crate::state::get(resolved) >= target);
        match tokio::time::timeout(timeout, wait).await {
            Ok(_) => Ok(()),
            Err(_) => Err(FlushTimeout {
                outstanding: target.saturating_sub(crate::state::get(resolved)),
                waited: timeout,
            }),
        }
    }

    /// Stops the bridge: the export ring is closed, what it holds is
    /// exported and acknowledged (for at most `timeout`, then abandoned and
    /// counted in [`ExportStats::abandoned`](crate::ExportStats::abandoned)),
    /// the pulls stop, and what was delivered locally is acknowledged.
    /// Returns the final counters.
    pub async fn shutdown(mut self, timeout: Duration) -> BridgeStats {
        self.stop.send_replace(true);
        let deadline = tokio::time::Instant::now() + timeout;
        if let Some((task, _)) = self.export.take() {
            let abort = self.abort.clone();
            let mut task = task;
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                abort.send_replace(true);
                let _ = task.await;
            }
        }
        for pull in self.pulls.drain(..) {
            let _ = pull.await;
        }
        // The pulls held the delivery channel's senders: the delivery thread
        // ends, then the ack task, after acknowledging what was delivered.
        if let Some(delivery) = self.delivery.take() {
            let join = tokio::task::spawn_blocking(move || delivery.join());
            // A publish blocked on a lossless local subscriber past the
            // deadline keeps the thread; it ends when the publish returns.
            let _ = tokio::time::timeout_at(deadline, join).await;
        }
        if let Some(acker) = self.acker.take() {
            let _ = tokio::time::timeout_at(deadline, acker).await;
        }
        let _ = tokio::time::timeout_at(deadline, self.client.flush()).await;
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.refresh();
        self.shared.snapshot()
    }
}

impl<T> Drop for Bridge<T> {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        self.abort.send_replace(true);
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.refresh();
        for pull in &self.pulls {
            pull.abort();
        }
        if let Some((task, _)) = &self.export {
            task.abort();
        }
    }
}
