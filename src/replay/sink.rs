//! Where replayed events go: JSON lines on stdout, or POSTs to an internal service.

use std::io::{BufWriter, Write};
use std::time::Duration;

use super::ReplayError;
use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Uri;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A whole post, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Endpoint {
    client: crate::outbound::HttpsClient,
    url: Uri,
}

pub enum Sink {
    Stdout(Printer),
    Url(Box<Endpoint>),
}

/// Lines for standard output, written by a thread of their own through a buffer:
/// a slow reader of the pipe holds up that thread, never the runtime's.
pub struct Printer {
    lines: mpsc::Sender<Line>,
}

enum Line {
    Text(Vec<u8>),
    /// Answered once every line before it is written and flushed (or with why not).
    Flush(oneshot::Sender<Result<(), ReplayError>>),
}

impl Printer {
    fn start() -> Self {
        let (lines, mut queue) = mpsc::channel::<Line>(1024);
        std::thread::Builder::new()
            .name("replay-stdout".into())
            .spawn(move || {
                let mut out = BufWriter::with_capacity(64 * 1024, std::io::stdout());
                let mut failed: Option<String> = None;
                while let Some(line) = queue.blocking_recv() {
                    let flushed = match line {
                        Line::Text(text) => {
                            if failed.is_none() {
                                failed = out.write_all(&text).err().map(|e| e.to_string());
                            }
                            None
                        }
                        Line::Flush(done) => Some(done),
                    };
                    // Flushed whenever nothing more waits: lines appear as they come.
                    if failed.is_none() && (flushed.is_some() || queue.is_empty()) {
                        failed = out.flush().err().map(|e| e.to_string());
                    }
                    if let Some(done) = flushed {
                        let _ = done.send(match &failed {
                            None => Ok(()),
                            Some(error) => Err(ReplayError::Stdout(error.clone())),
                        });
                    }
                }
            })
            .expect("a thread can be started");
        Self { lines }
    }
}

impl Sink {
    pub fn stdout() -> Self {
        Sink::Stdout(Printer::start())
    }

    pub fn url(url: &str) -> Result<Self, ReplayError> {
        let url: Uri = url
            .parse()
            .map_err(|e| ReplayError::Url(format!("{url}: {e}")))?;
        if !matches!(url.scheme_str(), Some("http" | "https")) {
            return Err(ReplayError::Url(format!(
                "{}: an http:// or https:// URL",
                crate::outbound::redacted_url(&url)
            )));
        }
        Ok(Sink::Url(Box::new(Endpoint {
            client: crate::outbound::client(None, CONNECT_TIMEOUT, 8)
                .map_err(ReplayError::Client)?,
            url,
        })))
    }

    /// A delivered event is committed past at once; printed lines are committed in groups.
    pub fn commits_each(&self) -> bool {
        matches!(self, Sink::Url(_))
    }

    /// Everything written so far is out: printed and flushed (posts are out once
    /// `write` returns). Call before committing past what was written.
    pub async fn flush(&self) -> Result<(), ReplayError> {
        match self {
            Sink::Stdout(printer) => {
                let (done, flushed) = oneshot::channel();
                printer
                    .lines
                    .send(Line::Flush(done))
                    .await
                    .map_err(|_| ReplayError::WriterStopped)?;
                flushed.await.map_err(|_| ReplayError::WriterStopped)?
            }
            Sink::Url(_) => Ok(()),
        }
    }

    /// Returns once the event is handed on: queued for stdout (see `flush`), or
    /// answered 2xx.
    pub async fn write(&self, meta: &Value, event: &Value) -> Result<(), ReplayError> {
        match self {
            Sink::Stdout(printer) => {
                let mut line = meta.clone();
                line["event"] = event.clone();
                let mut text = serde_json::to_vec(&line).expect("JSON always serializes");
                text.push(b'\n');
                printer
                    .lines
                    .send(Line::Text(text))
                    .await
                    .map_err(|_| ReplayError::WriterStopped)
            }
            Sink::Url(endpoint) => {
                let Endpoint { client, url } = endpoint.as_ref();
                let body = Bytes::from(serde_json::to_vec(event).expect("JSON always serializes"));
                let post = || async {
                    let request = hyper::Request::post(url.clone())
                        .header("content-type", crate::event::CONTENT_TYPE)
                        .body(Full::new(body.clone()))
                        .expect("a valid request");
                    let shown = crate::outbound::redacted_url(url);
                    let answered = tokio::time::timeout(REQUEST_TIMEOUT, async {
                        let response = client.request(request).await?;
                        let status = response.status();
                        crate::outbound::drain_answer(response.into_body()).await;
                        Ok::<_, hyper_util::client::legacy::Error>(status)
                    });
                    match answered.await {
                        Ok(Ok(status)) if status.is_success() => Ok(()),
                        Ok(Ok(status)) => Err(format!("{shown} answered {status}")),
                        Ok(Err(error)) => Err(format!(
                            "{shown} did not answer: {}",
                            crate::outbound::with_causes(&error)
                        )),
                        Err(_) => Err(format!(
                            "{shown} did not answer in {} s",
                            REQUEST_TIMEOUT.as_secs()
                        )),
                    }
                };
                let backoff = ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(50))
                    .with_max_delay(Duration::from_secs(10))
                    .without_max_times();
                post.retry(backoff)
                    .notify(|error, delay| {
                        tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "An event was not taken; retrying.")
                    })
                    .await
                    .map_err(ReplayError::Post)
            }
        }
    }
}
