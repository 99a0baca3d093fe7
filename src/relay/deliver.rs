//! One event to one receiver: signed POSTs, retried with capped, jittered backoff
//! (or as `Retry-After` says) until a 2xx, then given up or dead-lettered.

use super::RelayError;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, StatusCode};
use tokio::sync::Semaphore;

use super::metrics::SubscriptionMetrics;
use super::settings::Subscription;
use super::sign::signature;
use super::trace::Traced;

/// An event to deliver, as read from Kafka.
#[derive(Debug, Clone)]
pub struct Event {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    /// The event's `id`: the `webhook-id`, the same for every copy of one event.
    pub id: String,
    pub payload: Bytes,
    pub headers: Vec<(String, Vec<u8>)>,
    pub read_at: Instant,
}

/// A record's headers, owned.
pub fn headers_of(m: &impl rdkafka::Message) -> Vec<(String, Vec<u8>)> {
    use rdkafka::message::Headers;
    m.headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default()
}

/// What became of an event.
#[derive(Debug)]
pub enum Fate {
    Delivered,
    /// Not delivered: the last status or error, and how many attempts were made.
    Failed {
        last: String,
        attempts: u32,
    },
}

enum Attempt {
    Delivered,
    Retry {
        last: String,
        after: Option<Duration>,
    },
    GiveUp {
        last: String,
    },
}

pub struct Deliverer {
    client: crate::outbound::HttpsClient,
    pub subscription: Arc<Subscription>,
    in_flight: Semaphore,
    metrics: SubscriptionMetrics,
}

impl Deliverer {
    pub fn new(
        subscription: Arc<Subscription>,
        metrics: SubscriptionMetrics,
    ) -> Result<Self, RelayError> {
        let client = crate::outbound::client(
            subscription.ca_file.as_deref(),
            subscription.timeout,
            subscription.max_in_flight,
        )
        .map_err(|source| RelayError::Client {
            subscription: subscription.name.clone(),
            source,
        })?;
        Ok(Self {
            client,
            in_flight: Semaphore::new(subscription.max_in_flight),
            subscription,
            metrics,
        })
    }

    /// Delivers until a 2xx, or until `retry_for` has passed (`forever`: never give up
    /// on a retryable failure), or at once on a 4xx with `give_up_on_4xx`. Each attempt
    /// is a client span of `traced` when the relay traces.
    pub async fn deliver(&self, event: &Event, forever: bool, traced: Option<&Traced>) -> Fate {
        let s = &self.subscription;
        let started = Instant::now();
        let mut attempts = 0u32;
        let mut warned = false;
        loop {
            attempts += 1;
            let outcome = {
                let _permit = self.in_flight.acquire().await.expect("never closed");
                let _gauge = self.metrics.in_flight();
                self.attempt(event, traced, attempts).await
            };
            self.metrics.attempt();
            let (last, after) = match outcome {
                Attempt::Delivered => {
                    self.metrics
                        .delivered(event.read_at.elapsed().as_secs_f64());
                    return Fate::Delivered;
                }
                Attempt::GiveUp { last } => return Fate::Failed { last, attempts },
                Attempt::Retry { last, after } => (last, after),
            };
            self.metrics.retried();
            if !forever && started.elapsed() >= s.retry_for {
                return Fate::Failed { last, attempts };
            }
            if !warned && attempts >= 3 {
                warned = true;
                tracing::warn!(subscription = %s.name, id = %event.id, last = %last, "A receiver keeps failing; the event is retried.");
            }
            tokio::time::sleep(
                after.unwrap_or_else(|| backoff(attempts, s.retry_max_delay, &event.id)),
            )
            .await;
        }
    }

    async fn attempt(&self, event: &Event, traced: Option<&Traced>, nth: u32) -> Attempt {
        let s = &self.subscription;
        let span = traced.map(|t| (t, t.attempt(), SystemTime::now()));
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(s.url.clone())
            .header(CONTENT_TYPE, "application/cloudevents+json")
            .header("webhook-id", event.id.as_str())
            .header("webhook-timestamp", timestamp);
        if let Some(key) = &s.key {
            request = request.header(
                "webhook-signature",
                signature(key, &event.id, timestamp, &event.payload),
            );
        }
        for (name, value) in &s.headers {
            request = request.header(name, value);
        }
        // The receiver's own spans join the trace: under this attempt's span, or under
        // the producer span when the relay does not trace.
        match span {
            Some((_, own, _)) => request = request.header("traceparent", own.traceparent()),
            None => {
                if let Some(parent) = super::trace::record_context(event) {
                    request = request.header("traceparent", parent.traceparent());
                }
            }
        }
        if let Some(state) = super::trace::record_state(event) {
            request = request.header("tracestate", state);
        }
        let request = match request.body(Full::new(event.payload.clone())) {
            Ok(r) => r,
            Err(e) => {
                return Attempt::GiveUp {
                    last: format!("cannot build the request: {e}"),
                }
            }
        };
        let answered = tokio::time::timeout(s.timeout, async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let retry_after = response.headers().get(RETRY_AFTER).and_then(retry_after);
            // Read to the end (up to a cap), so the connection is reused.
            crate::outbound::drain_answer(response.into_body()).await;
            Ok::<_, hyper_util::client::legacy::Error>((status, retry_after))
        })
        .await;
        if let Some((traced, own, start)) = span {
            let answer = match &answered {
                Ok(Ok((status, _))) => Ok(status.as_u16()),
                Ok(Err(_)) => Err("request failed"),
                Err(_) => Err("timeout"),
            };
            traced.attempt_ended(s, own, start, nth, answer);
        }
        match answered {
            Err(_) => Attempt::Retry {
                last: format!("no answer in {} ms", s.timeout.as_millis()),
                after: None,
            },
            Ok(Err(e)) => Attempt::Retry {
                last: format!("request failed: {}", crate::outbound::with_causes(&e)),
                after: None,
            },
            Ok(Ok((status, after))) => classify(status, after, s.give_up_on_4xx),
        }
    }
}

fn classify(status: StatusCode, after: Option<Duration>, give_up_on_4xx: bool) -> Attempt {
    let last = status.as_u16().to_string();
    if status.is_success() {
        Attempt::Delivered
    } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Attempt::Retry { last, after }
    } else if give_up_on_4xx && status.is_client_error() {
        Attempt::GiveUp { last }
    } else {
        Attempt::Retry { last, after }
    }
}

/// `Retry-After` in seconds (an HTTP date is taken as no advice).
fn retry_after(value: &HeaderValue) -> Option<Duration> {
    let secs: u64 = value.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(3600)))
}

/// 250 ms doubling per attempt up to `cap`, then a random half to the whole of it.
fn backoff(attempt: u32, cap: Duration, seed: &str) -> Duration {
    let full = Duration::from_millis(250)
        .saturating_mul(1u32 << attempt.min(16))
        .min(cap);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let mix = seed.bytes().fold(nanos ^ 0x9e37_79b9_7f4a_7c15, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    full / 2 + full.mul_f64((mix % 1000) as f64 / 2000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_success_retry_or_give_up_as_the_subscription_says() {
        let kind = |status: u16, give_up| match classify(
            StatusCode::from_u16(status).unwrap(),
            None,
            give_up,
        ) {
            Attempt::Delivered => "delivered",
            Attempt::Retry { .. } => "retry",
            Attempt::GiveUp { .. } => "give up",
        };
        assert_eq!(kind(204, false), "delivered");
        assert_eq!(kind(429, true), "retry");
        assert_eq!(kind(503, true), "retry");
        assert_eq!(kind(404, false), "retry");
        assert_eq!(kind(404, true), "give up");
    }

    #[test]
    fn backoff_is_capped_and_jittered_within_half_to_whole() {
        for attempt in 1..30 {
            let d = backoff(attempt, Duration::from_secs(2), "id");
            assert!(d <= Duration::from_secs(2), "{d:?}");
            let full = Duration::from_millis(250)
                .saturating_mul(1 << attempt.min(16))
                .min(Duration::from_secs(2));
            assert!(d >= full / 2, "{d:?}");
        }
        assert_eq!(
            retry_after(&HeaderValue::from_static("3")),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after(&HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
    }
}
