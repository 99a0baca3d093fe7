//! `tim-kafka-bridge relay`: internal services subscribe over HTTP. Each
//! subscription is a consumer group; its events are POSTed, signed, to a URL,
//! retried, and dead-lettered after `retry_for`.

mod dead;
mod deliver;
mod error;
pub use error::RelayError;
mod metrics;
pub mod settings;
mod sign;
mod subscription;
mod trace;

use std::convert::Infallible;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use metrics::RelayMetrics;
use settings::{RelayConfig, RelayFile};
use subscription::Runner;

#[derive(clap::Args, Debug)]
pub struct RelayArgs {
    /// The relay file: listen, [kafka], [consumer], [[subscriptions]].
    #[arg(long, env = "TIM_BRIDGE_RELAY_CONFIG")]
    config: PathBuf,
    /// Send this subscription's dead letters to its receiver again, then exit.
    #[arg(long, value_name = "SUBSCRIPTION")]
    redeliver_dead: Option<String>,
}

pub fn read_config(path: &std::path::Path) -> Result<RelayConfig, crate::settings::SettingsError> {
    RelayFile::read(path)?.check(|name| std::env::var(name).ok())
}

pub async fn run(args: RelayArgs) -> ExitCode {
    let config = match read_config(&args.config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("tim-kafka-bridge relay: {error}");
            return ExitCode::from(2);
        }
    };
    let outcome = match args.redeliver_dead {
        Some(name) => redeliver(config, &name).await,
        None => serve(config).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tim-kafka-bridge relay: {error}");
            ExitCode::from(1)
        }
    }
}

async fn redeliver(mut config: RelayConfig, name: &str) -> Result<(), RelayError> {
    let at = config
        .subscriptions
        .iter()
        .position(|s| s.name == name)
        .ok_or_else(|| RelayError::NoSubscription(name.to_owned()))?;
    let subscription = config.subscriptions.remove(at);
    let count = dead::redeliver(&config, subscription).await?;
    tracing::info!(subscription = name, count, "Dead letters redelivered.");
    println!("{count} dead letters of `{name}` redelivered");
    Ok(())
}

/// The relay's endpoints (`/metrics`, `/readyz`, `/healthz`) serve probes and scrapers.
const MAX_CONNECTIONS: usize = 256;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

async fn serve(config: RelayConfig) -> Result<(), RelayError> {
    let metrics = Arc::new(RelayMetrics::default());
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| RelayError::Listen {
            address: config.listen,
            source,
        })?;
    let needs_producer = config
        .subscriptions
        .iter()
        .any(|s| s.dead_letter_topic.is_some());
    let producer = needs_producer
        .then(|| dead::producer(&config))
        .transpose()?;
    let telemetry = crate::telemetry::Telemetry::start(
        &config.tracing,
        metrics.trace_spans_dropped.clone(),
        "tim_relay_trace_spans_dropped_total",
    )?;
    let mut runners = Vec::new();
    for subscription in config.subscriptions.clone() {
        runners.push(Runner::new(
            &config,
            subscription,
            Arc::clone(&metrics),
            producer.clone(),
            telemetry.clone(),
        )?);
    }
    let joined: Vec<(String, Arc<AtomicBool>)> = config
        .subscriptions
        .iter()
        .zip(&runners)
        .map(|(s, r)| (s.name.clone(), r.joined()))
        .collect();
    let stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    for runner in runners {
        tasks.spawn(runner.run(stop.clone(), config.shutdown_timeout));
    }
    tracing::info!(listen = %config.listen, subscriptions = joined.len(), "The relay is running.");
    let endpoints = Arc::new(Endpoints { metrics, joined });
    let accepting = {
        let stop = stop.clone();
        // Bounded like the bridge's listener: a cap on connections, a deadline for
        // a request's head, and a pause after a failed accept (out of descriptors).
        let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    accepted = listener.accept() => {
                        let stream = match accepted {
                            Ok((stream, _)) => stream,
                            Err(error) => {
                                tracing::warn!(error = %error, "Could not accept a connection.");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                                continue;
                            }
                        };
                        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
                            continue;
                        };
                        let endpoints = Arc::clone(&endpoints);
                        tokio::spawn(async move {
                            let service = service_fn(move |req| {
                                let endpoints = Arc::clone(&endpoints);
                                async move { Ok::<_, Infallible>(endpoints.answer(&req)) }
                            });
                            let _ = http1::Builder::new()
                                .timer(hyper_util::rt::TokioTimer::new())
                                .header_read_timeout(HEADER_READ_TIMEOUT)
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                            drop(permit);
                        });
                    }
                }
            }
        })
    };
    crate::startup::shutdown_signal().await;
    tracing::info!("Stopping: finishing deliveries in flight, then committing.");
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    accepting.abort();
    Ok(())
}

struct Endpoints {
    metrics: Arc<RelayMetrics>,
    joined: Vec<(String, Arc<AtomicBool>)>,
}

impl Endpoints {
    fn answer(&self, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let (status, body, content_type) = match req.uri().path() {
            "/healthz" => (StatusCode::OK, "ok".to_owned(), "text/plain"),
            "/readyz" => {
                let waiting: Vec<&str> = self
                    .joined
                    .iter()
                    .filter(|(_, j)| !j.load(Ordering::Relaxed))
                    .map(|(name, _)| name.as_str())
                    .collect();
                if waiting.is_empty() {
                    (StatusCode::OK, "ready".to_owned(), "text/plain")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("not ready: not joined yet: {}", waiting.join(", ")),
                        "text/plain",
                    )
                }
            }
            "/metrics" => (
                StatusCode::OK,
                self.metrics.encode(),
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
            _ => (StatusCode::NOT_FOUND, "not found".to_owned(), "text/plain"),
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(content_type),
        );
        response
    }
}
