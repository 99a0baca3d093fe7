//! The exporter task: batches of finished spans to OTLP/HTTP, through the bridge's own
//! HTTP client (rustls, its timeouts). A batch the backend does not take is dropped
//! and counted; nothing is retried or waited for beyond one bounded request.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

use crate::outbound::HttpsClient;

const BATCH: usize = 512;
const EVERY: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Client(HttpsClient);

#[async_trait::async_trait]
impl HttpClient for Client {
    async fn send_bytes(
        &self,
        request: hyper::http::Request<Bytes>,
    ) -> Result<hyper::http::Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let request = hyper::Request::from_parts(parts, Full::new(body));
        let answer = tokio::time::timeout(TIMEOUT, self.0.request(request)).await??;
        let (parts, body) = answer.into_parts();
        let body = Limited::new(body, 1 << 20)
            .collect()
            .await
            .map_err(|e| -> HttpError { e.to_string().into() })?
            .to_bytes();
        Ok(hyper::http::Response::from_parts(parts, body))
    }
}

pub fn exporter(url: &str, service_name: &str) -> Result<SpanExporter, String> {
    let http = crate::outbound::client(None, TIMEOUT, 2).map_err(|e| e.to_string())?;
    let mut exporter = SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .with_timeout(TIMEOUT)
        .with_http_client(Client(http))
        .build()
        .map_err(|e| e.to_string())?;
    exporter.set_resource(
        &opentelemetry_sdk::Resource::builder_empty()
            .with_service_name(service_name.to_owned())
            .build(),
    );
    Ok(exporter)
}

pub async fn run(
    mut spans: mpsc::Receiver<SpanData>,
    exporter: SpanExporter,
    dropped: Counter,
    metric: &'static str,
) {
    let mut warned_at: Option<std::time::Instant> = None;
    while let Some(first) = spans.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + EVERY;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, spans.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        let count = batch.len() as u64;
        if let Err(error) = exporter.export(batch).await {
            dropped.inc_by(count);
            if warned_at.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
                warned_at = Some(std::time::Instant::now());
                tracing::warn!(%error, spans = count, metric, "The trace backend did not take a batch of spans; dropped and counted.");
            }
        }
    }
}
