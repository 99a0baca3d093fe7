//! The relay's part of a callback's trace: a consumer span per event, a child of the
//! producer span whose context the record carries in `traceparent` (and linked to it,
//! as OpenTelemetry's messaging conventions ask of a process span), and a client span
//! per HTTP attempt below it, whose context the webhook carries in `traceparent`.

use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry::trace::{Event as SpanEvent, SpanKind, Status};
use opentelemetry::KeyValue;

use super::deliver::Event;
use super::settings::Subscription;
use crate::telemetry::{link_to, Finished, Telemetry, TraceContext};

/// One event's consumer span while it is delivered.
#[derive(Clone)]
pub struct Traced {
    pub telemetry: Arc<Telemetry>,
    pub own: TraceContext,
    parent: Option<TraceContext>,
    start: SystemTime,
}

/// The `traceparent` a record carries, if it is valid.
pub fn record_context(event: &Event) -> Option<TraceContext> {
    header(event, "traceparent").and_then(TraceContext::parse)
}

/// The `tracestate` a record carries beside a valid `traceparent`, passed on as it is.
pub fn record_state(event: &Event) -> Option<&str> {
    record_context(event)?;
    header(event, "tracestate")
}

fn header<'a>(event: &'a Event, name: &str) -> Option<&'a str> {
    event
        .headers
        .iter()
        .find(|(key, _)| key == name)
        .and_then(|(_, value)| std::str::from_utf8(value).ok())
}

impl Traced {
    /// The consumer span of `event`, started now: under its producer span, or the
    /// first span of a new trace when the record carries none.
    pub fn start(telemetry: &Arc<Telemetry>, event: &Event) -> Self {
        let parent = record_context(event);
        Self {
            own: telemetry.context_under(parent),
            telemetry: Arc::clone(telemetry),
            parent,
            start: SystemTime::now(),
        }
    }

    /// Ends the consumer span: delivered, or `failed` with what became of the event.
    pub fn end(
        self,
        subscription: &Subscription,
        event: &Event,
        failed: Option<(&'static str, &str)>,
    ) {
        if !self.own.sampled {
            return;
        }
        let mut attributes = vec![
            KeyValue::new("messaging.system", "kafka"),
            KeyValue::new("messaging.operation.type", "process"),
            KeyValue::new("messaging.destination.name", event.topic.clone()),
            KeyValue::new(
                "messaging.destination.partition.id",
                event.partition.to_string(),
            ),
            KeyValue::new("messaging.kafka.offset", event.offset),
            KeyValue::new(
                "messaging.consumer.group.name",
                subscription.group_id.clone(),
            ),
            KeyValue::new("cloudevents.event_id", event.id.clone()),
            KeyValue::new("tim.subscription", subscription.name.clone()),
        ];
        if let Some(key) = event
            .key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
        {
            attributes.push(KeyValue::new("messaging.kafka.message.key", key.to_owned()));
        }
        let (events, status) = match failed {
            None => (Vec::new(), Status::Unset),
            Some((fate, last)) => (
                vec![SpanEvent::new(
                    fate,
                    SystemTime::now(),
                    vec![KeyValue::new("error.type", last.to_owned())],
                    0,
                )],
                Status::error(format!("{fate}: {last}")),
            ),
        };
        self.telemetry.finish(Finished {
            name: format!("process {}", event.topic).into(),
            kind: SpanKind::Consumer,
            context: self.own,
            parent: self.parent.map(|p| p.span_id),
            parent_remote: self.parent.is_some(),
            start: self.start,
            end: SystemTime::now(),
            attributes,
            events,
            links: self.parent.map(link_to).into_iter().collect(),
            status,
        });
    }

    /// The context of one HTTP attempt's client span, below the consumer span.
    pub fn attempt(&self) -> TraceContext {
        self.own.child()
    }

    /// Ends one attempt's client span: its status code, or why it has none.
    pub fn attempt_ended(
        &self,
        subscription: &Subscription,
        own: TraceContext,
        start: SystemTime,
        attempt: u32,
        answer: Result<u16, &str>,
    ) {
        if !own.sampled {
            return;
        }
        let url = &subscription.url;
        let scheme = url.scheme_str().unwrap_or("http");
        let port = url
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        let host = url.host().unwrap_or_default();
        let mut attributes = vec![
            KeyValue::new("http.request.method", "POST"),
            // Without the query or user info, which may hold secrets.
            KeyValue::new(
                "url.full",
                format!("{scheme}://{host}:{port}{}", url.path()),
            ),
            KeyValue::new("server.address", host.to_owned()),
            KeyValue::new("server.port", port as i64),
            KeyValue::new("tim.subscription", subscription.name.clone()),
        ];
        if attempt > 1 {
            attributes.push(KeyValue::new(
                "http.request.resend_count",
                (attempt - 1) as i64,
            ));
        }
        let status = match answer {
            Ok(code) => {
                attributes.push(KeyValue::new("http.response.status_code", code as i64));
                if (200..300).contains(&code) {
                    Status::Unset
                } else {
                    attributes.push(KeyValue::new("error.type", code.to_string()));
                    Status::error(code.to_string())
                }
            }
            Err(why) => {
                attributes.push(KeyValue::new("error.type", why.to_owned()));
                Status::error(why.to_owned())
            }
        };
        self.telemetry.finish(Finished {
            name: "POST".into(),
            kind: SpanKind::Client,
            context: own,
            parent: Some(self.own.span_id),
            parent_remote: false,
            start,
            end: SystemTime::now(),
            attributes,
            events: Vec::new(),
            links: Vec::new(),
            status,
        });
    }
}
