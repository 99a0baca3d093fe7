//! Accepting and serving connections, within the limits of `[limits]`: how many at
//! once, how long a head may take, how long a kept-alive connection may idle, and how
//! many requests one connection may carry. A panicking handler is answered 500.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use futures_util::FutureExt;
use hyper::header::{HeaderValue, CONNECTION};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::error::CallbackError;
use super::{route, State};
use crate::metrics::{KindLabels, Metrics};

/// Connections past the limit being answered 503 at once, at most; past that a
/// connection is closed without an answer (a flood must not become a flood of tasks).
const MAX_REFUSING: usize = 256;
/// One line about refused connections per interval, with their count.
const REFUSED_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Serves until `shutdown` resolves, then stops accepting and gives open connections
/// up to `drain` to finish.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: Arc<State>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let limits = &state.http;
    let slots = Arc::new(Semaphore::new(limits.max_connections.get()));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let (mut refused_since_line, mut last_line) = (0u64, None::<Instant>);
    let stop = Arc::new(Closing::default());
    let mut http = http1::Builder::new();
    // Head and idle time are watched per connection below: hyper's header timer
    // would also run while a kept-alive connection waits for its next request.
    http.timer(TokioTimer::new()).header_read_timeout(None);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(error) => {
                    tracing::warn!(error = %error, "Could not accept a connection.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refused_since_line += 1;
            if last_line.is_none_or(|at| at.elapsed() >= REFUSED_LOG_INTERVAL) {
                tracing::warn!(peer = %peer, max_connections = limits.max_connections.get(), refused = refused_since_line, "Refused connections: too many open.");
                (refused_since_line, last_line) = (0, Some(Instant::now()));
            }
            match Arc::clone(&refusing).try_acquire_owned() {
                Ok(permit) => {
                    closed(&state, "over_limit");
                    tokio::spawn(async move {
                        refuse(stream).await;
                        drop(permit);
                    });
                }
                Err(_) => {
                    closed(&state, "over_limit_unanswered");
                    drop(stream);
                }
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (state, http, stop, tls) = (
            Arc::clone(&state),
            http.clone(),
            Arc::clone(&stop),
            tls.clone(),
        );
        tokio::spawn(async move {
            state.metrics.connections_open.inc();
            match tls {
                None => connection(stream, peer, &state, &http, &stop).await,
                Some(tls) => {
                    let head_time = state.http.header_read_timeout;
                    match tokio::time::timeout(head_time, tls.accept(stream)).await {
                        Ok(Ok(stream)) => connection(stream, peer, &state, &http, &stop).await,
                        Ok(Err(error)) => {
                            closed(&state, "tls_handshake");
                            tracing::info!(peer = %peer, error = %error, "A TLS handshake failed.");
                        }
                        Err(_) => {
                            closed(&state, "tls_handshake");
                            tracing::info!(peer = %peer, "A TLS handshake took too long.");
                        }
                    }
                }
            }
            state.metrics.connections_open.dec();
            drop(slot);
        });
    }
    drop(listener);
    stop.close();
    let all = u32::try_from(limits.max_connections.get()).unwrap_or(u32::MAX);
    if tokio::time::timeout(drain, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            drain_ms = drain.as_millis() as u64,
            "Connections still open after the drain time; closing them."
        );
    }
}

/// One connection past the limit: a clear answer, then the door.
async fn refuse(mut stream: TcpStream) {
    let body = serde_json::json!({
        "ActionStatus": "FAIL",
        "ErrorCode": 1,
        "ErrorInfo": "the bridge has too many open connections; try again later",
    })
    .to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

fn closed(state: &State, kind: &'static str) {
    state
        .metrics
        .connections_closed
        .get_or_create(&KindLabels { kind })
        .inc();
}

/// What the watchdog of one connection needs to know, in milliseconds since `epoch`.
struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    served: AtomicU64,
    /// When the last request was answered (or the connection opened).
    last_answer: AtomicU64,
    /// When the first byte of the head now being read arrived; 0: none yet.
    head_started: AtomicU64,
}

impl Activity {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }
}

async fn connection<I>(
    io: I,
    peer: SocketAddr,
    state: &Arc<State>,
    http: &http1::Builder,
    stop: &Closing,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &state.http;
    let activity = Arc::new(Activity {
        epoch: Instant::now(),
        in_flight: AtomicUsize::new(0),
        served: AtomicU64::new(0),
        last_answer: AtomicU64::new(1),
        head_started: AtomicU64::new(0),
    });
    let max_requests = limits.max_requests_per_connection;
    let service = {
        let (state, activity) = (Arc::clone(state), Arc::clone(&activity));
        service_fn(move |req| {
            let (state, activity) = (Arc::clone(&state), Arc::clone(&activity));
            activity.in_flight.fetch_add(1, Ordering::SeqCst);
            activity.head_started.store(0, Ordering::SeqCst);
            let served = activity.served.fetch_add(1, Ordering::Relaxed) + 1;
            async move {
                let mut response = guarded(&state.metrics, route(req, &state, peer.ip())).await;
                if served >= max_requests {
                    response
                        .headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                activity.last_answer.store(activity.now(), Ordering::SeqCst);
                activity.in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let io = Watched {
        inner: io,
        activity: Arc::clone(&activity),
    };
    let conn = http.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let head_limit = limits.header_read_timeout.as_millis() as u64;
    let idle_limit = limits.keep_alive_idle.as_millis() as u64;
    let mut closing = false;
    let listed = stop.list();
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    // The watchdog wakes on its timer, never per request: unless a head is being read
    // it wakes at least once per head limit, and a head it then finds started is timed
    // from its first byte, so that limit holds to the millisecond all the same.
    loop {
        let now = activity.now();
        let head = activity.head_started.load(Ordering::SeqCst);
        let busy = activity.in_flight.load(Ordering::SeqCst) > 0;
        let (reason, deadline, wake) = if busy {
            (None, now + idle_limit, now + head_limit)
        } else if head > 0 {
            (Some("header_timeout"), head + head_limit, head + head_limit)
        } else {
            let last = activity.last_answer.load(Ordering::SeqCst);
            let deadline = last + idle_limit;
            (Some("idle"), deadline, deadline.min(now + head_limit))
        };
        if let Some(reason) = reason.filter(|_| deadline <= now) {
            closed(state, reason);
            tracing::debug!(peer = %peer, reason, "Closed a connection.");
            return;
        }
        let wait = Duration::from_millis(wake.saturating_sub(now).max(1));
        timer.as_mut().reset(Instant::now() + wait);
        let woke = std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                return Poll::Ready(Woke::Ended(result));
            }
            if !closing && stop.closing(&listed, cx) {
                return Poll::Ready(Woke::Closing);
            }
            match timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Woke::Timer),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        match woke {
            Woke::Ended(result) => {
                if let Err(error) = result {
                    tracing::debug!(peer = %peer, error = %error, "A connection ended with an error.");
                }
                return;
            }
            Woke::Closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            Woke::Timer => {}
        }
    }
}

enum Woke {
    Ended(Result<(), hyper::Error>),
    Closing,
    Timer,
}

/// Tells every open connection to finish what it serves and close. A connection
/// checks a flag and its own waker each time it wakes; the shared list is locked only
/// when a connection opens or closes (a shared `Notify` locked on every wake-up of
/// every connection, as a cancellation token's is).
#[derive(Default)]
struct Closing {
    closing: AtomicBool,
    next: AtomicU64,
    wakers: Mutex<HashMap<u64, Arc<AtomicWaker>>>,
}

/// A connection's place in [`Closing`]'s list, left when the connection ends.
struct Listed<'a> {
    closing: &'a Closing,
    id: u64,
    waker: Arc<AtomicWaker>,
}

impl Closing {
    fn list(&self) -> Listed<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let waker = Arc::new(AtomicWaker::new());
        self.wakers().insert(id, Arc::clone(&waker));
        Listed {
            closing: self,
            id,
            waker,
        }
    }

    /// Whether the connection must close; if not, `cx` is woken when it must.
    fn closing(&self, listed: &Listed<'_>, cx: &Context<'_>) -> bool {
        listed.waker.register(cx.waker());
        self.closing.load(Ordering::SeqCst)
    }

    fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        for waker in self.wakers().values() {
            waker.wake();
        }
    }

    fn wakers(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<AtomicWaker>>> {
        self.wakers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        self.closing.wakers().remove(&self.id);
    }
}

type Answer = hyper::Response<http_body_util::Full<bytes::Bytes>>;

/// The handler's answer, or 500 in Tencent's shape if it panicked, logged and counted.
async fn guarded(metrics: &Metrics, handler: impl Future<Output = Answer>) -> Answer {
    let panic = match AssertUnwindSafe(handler).catch_unwind().await {
        Ok(answer) => return answer,
        Err(panic) => panic,
    };
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    metrics.handler_panics.inc();
    tracing::error!(panic = %message, "A request handler panicked; answered 500.");
    CallbackError::Internal.into_response()
}

/// The connection's stream, noting when the first byte of a new head arrives.
struct Watched<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let a = &self.activity;
        if buf.filled().len() > before
            && a.in_flight.load(Ordering::SeqCst) == 0
            && a.head_started.load(Ordering::SeqCst) == 0
        {
            a.head_started.store(a.now(), Ordering::SeqCst);
        }
        poll
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_is_answered_500_in_tencents_shape_and_counted() {
        let metrics = Metrics::default();
        let answer = guarded(&metrics, async {
            panic!("a bug");
        })
        .await;
        assert_eq!(answer.status(), 500);
        let body = answer.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["ActionStatus"], "FAIL");
        assert_eq!(body["ErrorCode"], 1);
        assert!(metrics
            .encode()
            .contains("tim_bridge_handler_panics_total 1"));

        let fine = guarded(&metrics, async { CallbackError::NotFound.into_response() }).await;
        assert_eq!(
            fine.status(),
            404,
            "an answer that did not panic goes through"
        );
    }
}
