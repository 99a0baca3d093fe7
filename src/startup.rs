//! Builds the bridge from settings and runs it until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::delivery::gate::Gate;
use crate::delivery::{Buffer, MemoryBuffer, ShutdownReport, Sink};
use crate::http::{self, Certificates, State};
use crate::kafka::{self, Forwarder, Readiness};
use crate::metrics::KindLabels;
use crate::metrics::Metrics;
use crate::ownership::{self, Claimed};
use crate::route::Routes;
use crate::settings::{Ack, BufferConfig, Config, KafkaConfig};
use crate::spool::{DeadLetters, Spool};

/// How often topics are tried again when they could not be created at start.
const TOPIC_CREATION_RETRY: Duration = Duration::from_secs(5);

pub struct Application {
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    certificates: Option<Arc<Certificates>>,
    state: Arc<State>,
    stop_monitor: CancellationToken,
    forwarder: Arc<Forwarder>,
    shutdown_timeout: Duration,
    /// Set when the spool turns out to hold another Kafka cluster's events.
    refused: Arc<Mutex<Option<String>>>,
}

impl Application {
    /// Connects the producer, creates missing topics when asked to, and binds the
    /// listener (port 0 picks a free one: see [`Application::local_addr`]).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let Config {
            listen,
            admin_listen,
            http,
            admission,
            dedup,
            buffer,
            kafka,
            shutdown_timeout,
            tracing: traces,
        } = config;
        let metrics = Arc::new(Metrics::default());
        let telemetry = crate::telemetry::Telemetry::start(
            &traces,
            metrics.trace_spans_dropped.clone(),
            "tim_bridge_trace_spans_dropped_total",
        )?;
        let refused = Arc::new(Mutex::new(None));
        let stop_monitor = CancellationToken::new();
        let routes = Routes::new(&kafka);
        metrics.preregister(routes.topics());
        let unsigned = admission
            .apps
            .iter()
            .filter(|a| a.tokens.is_empty())
            .count();
        metrics.unsigned_apps.set(unsigned as i64);
        // First, so that a bad producer property stops start-up before topics are created.
        let forwarder = start_forwarder(&kafka, &buffer.spool_dir, &metrics)?;
        if let Some(telemetry) = &telemetry {
            forwarder.trace_with(Arc::clone(telemetry));
        }
        if kafka.create_topics {
            if let Err(error) = kafka::create_topics(&kafka, routes.topics()).await {
                tracing::error!(error = %error, "Could not create the topics; trying again in the background, and readiness says what is missing.");
                tokio::spawn(kafka::keep_creating_topics(
                    kafka.clone(),
                    routes.topics().to_vec(),
                    TOPIC_CREATION_RETRY,
                    stop_monitor.clone(),
                ));
            }
        }
        let waiting: Arc<dyn Buffer> = match buffer.ack {
            Ack::Memory => Arc::new(MemoryBuffer::new(
                Arc::clone(&forwarder) as _,
                buffer.capacity.get(),
                buffer.enqueue_timeout,
                Arc::clone(&metrics),
            )),
            Ack::Durable => {
                // What the spool holds waits at the gate until the cluster is known to be its own.
                let gate = Gate::closed(Arc::clone(&forwarder) as _);
                // Recovery reads what the last run left: off the runtime's threads.
                let (sink, metrics, dir) = (
                    Arc::clone(&gate) as Arc<dyn Sink>,
                    Arc::clone(&metrics),
                    buffer.spool_dir.clone(),
                );
                let spool = tokio::task::spawn_blocking(move || {
                    open_spool(
                        &dir,
                        buffer.spool_max_bytes,
                        buffer.capacity.get(),
                        sink,
                        &metrics,
                    )
                })
                .await
                .context("opening the spool panicked")??;
                let claimed = claim_spool(
                    &buffer,
                    &kafka.brokers,
                    &forwarder,
                    spool.waiting(),
                    gate,
                    Arc::clone(&refused),
                    stop_monitor.clone(),
                )
                .await;
                if let Err(error) = claimed {
                    // Lets go of the directory, so that it can be drained or adopted.
                    spool.finish().await;
                    return Err(error);
                }
                spool
            }
        };
        let readiness = Arc::new(Readiness::default());
        Arc::clone(&readiness).spawn_monitor(
            Arc::clone(&forwarder),
            routes.topics().to_vec(),
            kafka.readiness_interval,
            kafka.startup_deadline,
            Arc::clone(&metrics),
            stop_monitor.clone(),
        );
        let certificates = match http.tls.clone() {
            None => None,
            Some(files) => Some(
                tokio::task::spawn_blocking(move || Certificates::load(&files))
                    .await
                    .context("loading the HTTPS certificate panicked")??,
            ),
        };
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen} (setting `listen`)"))?;
        let admin_listener =
            match admin_listen {
                None => None,
                Some(address) => Some(TcpListener::bind(address).await.with_context(|| {
                    format!("cannot listen on {address} (setting `admin_listen`)")
                })?),
            };
        // A signed request stays valid for the skew either side of its time.
        let replay_window = 2 * admission.request_time_skew + Duration::from_secs(1);
        let evictions = |kind| {
            let counter = metrics.dedup_evictions.get_or_create(&KindLabels { kind });
            counter.clone()
        };
        tracing::info!(
            callbacks_per_second = crate::dedup::rate_held(dedup.max_bytes, replay_window),
            dedup_max_bytes = dedup.max_bytes,
            "Every signed request is remembered for its whole freshness window up to this rate; above it, a replay may be published again (counted in tim_bridge_dedup_evictions_total)."
        );
        Ok(Self {
            listener,
            admin_listener,
            certificates,
            shutdown_timeout,
            state: Arc::new(State {
                rejection_lines: crate::quota::LineQuota::new(Duration::from_secs(10)),
                requests_seen: crate::dedup::Seen::new(
                    replay_window,
                    dedup.max_bytes,
                    evictions("request"),
                ),
                events_seen: dedup.event_window.map(|window| {
                    crate::dedup::Seen::new(window, dedup.max_bytes, evictions("event"))
                }),
                http,
                admission,
                buffer: waiting,
                routes,
                readiness,
                metrics,
                telemetry,
            }),
            stop_monitor,
            forwarder,
            refused,
        })
    }

    /// The Kafka producer in use now: for librdkafka's fault injection in tests, and
    /// for an embedding program's own statistics.
    pub fn producer(&self) -> kafka::KafkaProducer {
        self.forwarder.producer()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Where `/metrics` and `/readyz` are served, when `admin_listen` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listener
            .as_ref()
            .map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    /// The HTTPS certificate, to reload it as a SIGHUP does; `None` without HTTPS.
    pub fn certificates(&self) -> Option<Arc<Certificates>> {
        self.certificates.clone()
    }

    /// Serves until `shutdown` resolves; then stops accepting, drains connections and
    /// flushes Kafka, each within `shutdown_timeout_ms`, and reports what was not confirmed.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> ShutdownReport {
        let bound = self.shutdown_timeout;
        let acceptor = self.certificates.as_ref().map(|c| {
            reload_on_sighup(Arc::clone(c), Arc::clone(&self.state.metrics));
            c.acceptor()
        });
        let buffer = Arc::clone(&self.state.buffer);
        let readiness = Arc::clone(&self.state.readiness);
        let refused = Arc::clone(&self.refused);
        let broke = async move {
            loop {
                if let Some(reason) = buffer.broken() {
                    return Stop::SpoolBroke(reason);
                }
                if let Some(reason) = readiness.gave_up() {
                    return Stop::GaveUp(reason);
                }
                if let Some(reason) = refused
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
                {
                    return Stop::WrongCluster(reason);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        let (tell, told) = tokio::sync::oneshot::channel();
        let shutdown = async move {
            tokio::select! {
                () = shutdown => {}
                reason = broke => { let _ = tell.send(reason); }
            }
        };
        let admin = self.admin_listener.map(|listener| {
            let stopped = self.stop_monitor.clone();
            tokio::spawn(http::serve_admin(
                listener,
                Arc::clone(&self.state),
                async move { stopped.cancelled().await },
            ))
        });
        http::serve(
            self.listener,
            acceptor,
            Arc::clone(&self.state),
            shutdown,
            bound,
        )
        .await;
        self.stop_monitor.cancel();
        if let Some(admin) = admin {
            let _ = admin.await;
        }
        tracing::info!(
            in_flight = self.state.buffer.depth(),
            "Stopped accepting; flushing Kafka."
        );
        let mut report = self.state.buffer.shutdown(bound).await;
        report.broken = match told.await {
            Ok(Stop::SpoolBroke(reason)) => {
                tracing::error!(reason = %reason, "Stopped because the spool broke; what it holds is sent at the next start.");
                Some(reason)
            }
            Ok(Stop::WrongCluster(reason)) => {
                tracing::error!(reason = %reason, "Stopped: the spool holds another Kafka cluster's events; they wait in it.");
                Some(reason)
            }
            Ok(Stop::GaveUp(reason)) => {
                tracing::error!(reason = %reason, "Stopped: Kafka never worked with these settings; with ack = durable, the callbacks taken meanwhile wait in the spool.");
                Some(reason)
            }
            Err(_) => None,
        };
        if report.left_in_spool > 0 {
            tracing::info!(
                delivered = report.delivered,
                left_in_spool = report.left_in_spool,
                "Stopped; the spool keeps the rest for the next start."
            );
        } else if report.unconfirmed.is_empty() {
            tracing::info!(
                delivered = report.delivered,
                "Stopped; every accepted event was confirmed by Kafka."
            );
        } else {
            tracing::error!(
                delivered = report.delivered,
                unconfirmed = report.unconfirmed.len(),
                msg_keys = %report.unconfirmed.join(","),
                "Stopped with events Kafka had not confirmed."
            );
        }
        report
    }
}

/// Why the bridge stopped by itself.
enum Stop {
    SpoolBroke(String),
    /// `kafka.startup_deadline_ms` passed and Kafka had never worked.
    GaveUp(String),
    /// The spool was written for another Kafka cluster.
    WrongCluster(String),
}

/// Reloads the certificate on each SIGHUP, for as long as the process runs.
fn reload_on_sighup(certificates: Arc<Certificates>, metrics: Arc<Metrics>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(error) => {
            tracing::warn!(error = %error, "Cannot listen for SIGHUP; the certificate will not be reloaded.");
            return;
        }
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let reading = Arc::clone(&certificates);
            let reloaded =
                tokio::task::spawn_blocking(move || reading.reload().map_err(|e| e.to_string()))
                    .await
                    .unwrap_or_else(|e| Err(format!("reloading panicked: {e}")));
            let outcome = match reloaded {
                Ok(()) => {
                    tracing::info!("Reloaded the HTTPS certificate.");
                    "ok"
                }
                Err(error) => {
                    tracing::error!(error = %error, "Could not reload the HTTPS certificate; the previous one stays.");
                    "error"
                }
            };
            metrics
                .tls_reloads
                .get_or_create(&crate::metrics::KindLabels { kind: outcome })
                .inc();
        }
    });
}

/// The forwarder as `serve` and `spool drain` make it: the producer from the Kafka
/// settings, with the dead-letter log in `spool_dir`.
pub(crate) fn start_forwarder(
    kafka: &KafkaConfig,
    spool_dir: &Path,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Arc<Forwarder>> {
    let producer_config = kafka::producer_config(kafka).map_err(anyhow::Error::from)?;
    let dead_letters = DeadLetters::open(spool_dir, Arc::clone(metrics)).with_context(|| {
        format!(
            "cannot open the dead-letter log in {}/dead (setting `spool_dir`)",
            spool_dir.display()
        )
    })?;
    Forwarder::start(
        &producer_config,
        Routes::new(kafka).topics(),
        kafka.retry_max_delay,
        Arc::clone(metrics),
        dead_letters,
    )
    .map_err(|e| anyhow::anyhow!("invalid Kafka producer setting: {e}"))
}

/// Opens the gate in front of the forwarder once the spool in `dir` may go to the
/// cluster the producer reaches: at once when it holds nothing or says no cluster;
/// else when the cluster says who it is (waiting up to 5 s here, then in the
/// background while Kafka does not answer). Another cluster's events are refused: here
/// with an error, in the background by stopping the bridge through `refused`.
async fn claim_spool(
    buffer: &BufferConfig,
    brokers: &str,
    forwarder: &Arc<Forwarder>,
    waiting: u64,
    gate: Arc<Gate>,
    refused: Arc<Mutex<Option<String>>>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let (dir, adopt) = (buffer.spool_dir.as_path(), buffer.adopt_spool);
    let holding = ownership::holding(dir, waiting);
    // Nothing of another cluster's can be sent: open now, record the cluster later.
    let free = holding == 0 || crate::spool::cluster::read(dir)?.is_none();
    if free {
        gate.open();
    }
    let ask = {
        let (dir, brokers, forwarder) = (dir.to_owned(), brokers.to_owned(), Arc::clone(forwarder));
        move |wait| {
            let producer = forwarder.producer();
            let (dir, brokers) = (dir.clone(), brokers.clone());
            async move { ownership::claim(&dir, &brokers, producer, holding, adopt, wait).await }
        }
    };
    if !free && ask(Duration::from_secs(5)).await? == Claimed::Yes {
        gate.open();
        return Ok(());
    }
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            match ask(Duration::from_secs(5)).await {
                Ok(Claimed::Yes) => return gate.open(),
                Ok(Claimed::Unknown) => tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                },
                Err(error) => {
                    *refused.lock().unwrap_or_else(PoisonError::into_inner) =
                        Some(format!("{error:#}"));
                    return;
                }
            }
        }
    });
    Ok(())
}

/// The spool in `dir`, recovered and sending to `sink`, at most `in_flight` records
/// at once; fails while another process holds the directory.
pub(crate) fn open_spool(
    dir: &Path,
    max_bytes: u64,
    in_flight: usize,
    sink: Arc<dyn Sink>,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Arc<Spool>> {
    Spool::open(dir, max_bytes, in_flight, sink, Arc::clone(metrics)).with_context(|| {
        format!(
            "cannot open the spool (setting `spool_dir`: {})",
            dir.display()
        )
    })
}

/// SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler can be installed");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("Shutdown requested.");
}
