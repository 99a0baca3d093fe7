//! OpenTelemetry traces of a callback, from Tencent's request to Kafka's confirmation
//! and on through the relay: a server span per callback (with its admit and spool
//! append as children), a producer span per event, whose context each record carries
//! in its `traceparent` header, and in the relay a consumer span per event with a
//! client span per HTTP attempt.
//!
//! Spans are built as finished `SpanData` and handed to a bounded queue that a task
//! drains to the OTLP exporter: the callback path never waits for the backend, and a
//! span that finds the queue full, or whose export fails, is dropped and counted in
//! `tim_bridge_trace_spans_dropped_total`. The producer span's context travels in the
//! record (through the spool too), so it is ended when Kafka confirms the event, long
//! after the callback was answered: a child that outlives its parent. Retries and
//! producer replacements are its events; a refusal for good (dead-lettered) ends it
//! with an error status. With tracing off (no endpoint) none of this exists.

mod export;

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

pub use crate::delivery::trace::{RecordTrace, TraceContext};

use crate::delivery::Record;
use crate::settings::{Sampler, SettingsError, TracingSettings};

pub struct Telemetry {
    queue: mpsc::Sender<SpanData>,
    sampler: Sampler,
    scope: InstrumentationScope,
    dropped: Counter,
}

impl Telemetry {
    /// Starts the exporter task, or None when tracing is off. `dropped` counts the
    /// spans that never reached the backend; `metric` is its name, for the log line.
    pub fn start(
        settings: &TracingSettings,
        dropped: Counter,
        metric: &'static str,
    ) -> Result<Option<std::sync::Arc<Self>>, SettingsError> {
        let Some((url, sampler)) = settings.checked()? else {
            return Ok(None);
        };
        let exporter = export::exporter(&url, &settings.service_name)
            .map_err(|e| SettingsError::new("tracing.endpoint", e))?;
        let (queue, spans) = mpsc::channel(settings.queue_spans);
        tokio::spawn(export::run(spans, exporter, dropped.clone(), metric));
        tracing::info!(endpoint = %url, sampler = ?sampler, "Exporting traces.");
        Ok(Some(std::sync::Arc::new(Self {
            queue,
            sampler,
            scope: InstrumentationScope::builder("tim-kafka-bridge")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
            dropped,
        })))
    }

    /// The callback's own span context: under the caller's `traceparent` when it sent
    /// a valid one, else a new trace, sampled as the sampler says.
    pub fn server_context(
        &self,
        traceparent: Option<&str>,
    ) -> (TraceContext, Option<TraceContext>) {
        let parent = traceparent.and_then(TraceContext::parse);
        (self.context_under(parent), parent)
    }

    /// A span's context under `parent` (sampled as the sampler says of it), or the
    /// first span of a new trace.
    pub fn context_under(&self, parent: Option<TraceContext>) -> TraceContext {
        match parent {
            Some(parent) => {
                let mut own = parent.child();
                own.sampled = self.sampler.sampled(Some(parent.sampled), parent.trace_id);
                own
            }
            None => TraceContext::root(|trace_id| self.sampler.sampled(None, trace_id)),
        }
    }

    /// An internal step of a sampled span (`parent`), from `start` to now.
    pub fn step(
        &self,
        name: &'static str,
        parent: TraceContext,
        start: SystemTime,
        attributes: Vec<KeyValue>,
        status: Status,
    ) {
        self.finish(Finished {
            name: name.into(),
            kind: SpanKind::Internal,
            context: parent.child(),
            parent: Some(parent.span_id),
            parent_remote: false,
            start,
            end: SystemTime::now(),
            attributes,
            events: Vec::new(),
            links: Vec::new(),
            status,
        });
    }

    /// Hands a finished span to the exporter, or drops it (counted) when the queue is full.
    pub fn finish(&self, span: Finished) {
        if !span.context.sampled {
            return;
        }
        // Both are `non_exhaustive`, with public fields.
        let mut events = SpanEvents::default();
        events.events = span.events;
        let mut links = SpanLinks::default();
        links.links = span.links;
        let data = SpanData {
            span_context: otel_context(span.context),
            parent_span_id: span.parent.map_or(SpanId::INVALID, SpanId::from),
            parent_span_is_remote: span.parent_remote,
            span_kind: span.kind,
            name: span.name,
            start_time: span.start,
            end_time: span.end,
            attributes: span.attributes,
            dropped_attributes_count: 0,
            events,
            links,
            status: span.status,
            instrumentation_scope: self.scope.clone(),
        };
        if self.queue.try_send(data).is_err() {
            self.dropped.inc();
        }
    }

    /// The producer span of `record`, ended now that Kafka confirmed it; `notes` are
    /// what happened to it on the way (retries, a producer's replacement).
    pub fn delivered(
        &self,
        record: &Record,
        trace: &RecordTrace,
        (partition, offset): (i32, i64),
        notes: Vec<Event>,
    ) {
        if !trace.context.sampled {
            return;
        }
        let mut attributes = vec![
            KeyValue::new("messaging.destination.partition.id", partition.to_string()),
            KeyValue::new("messaging.kafka.offset", offset),
        ];
        attributes.extend(producer_attributes(record));
        self.finish(producer_span(
            record,
            trace,
            attributes,
            notes,
            Status::Unset,
        ));
    }

    /// The producer span of a record Kafka refused for good, ended as an error: the
    /// record went to the dead-letter log.
    pub fn refused(&self, record: &Record, trace: &RecordTrace, mut notes: Vec<Event>, why: &str) {
        if !trace.context.sampled {
            return;
        }
        notes.push(Event::new(
            "dead-lettered",
            SystemTime::now(),
            vec![KeyValue::new("error.type", why.to_owned())],
            0,
        ));
        let attributes = producer_attributes(record);
        self.finish(producer_span(
            record,
            trace,
            attributes,
            notes,
            Status::error(format!("refused for good by Kafka: {why}")),
        ));
    }
}

/// A note of what happened to a sampled record on its way, for its producer span:
/// none (and no allocation) for a record that is not sampled.
pub fn note(
    trace: Option<&RecordTrace>,
    notes: &mut Vec<Event>,
    name: &'static str,
    attributes: Vec<KeyValue>,
) {
    if trace.is_some_and(|t| t.context.sampled) && notes.len() < MAX_NOTES {
        notes.push(Event::new(name, SystemTime::now(), attributes, 0));
    }
}

/// Past this many events a record's span keeps only the first ones (a long outage).
const MAX_NOTES: usize = 32;

fn producer_attributes(record: &Record) -> Vec<KeyValue> {
    let mut attributes = vec![
        KeyValue::new("messaging.system", "kafka"),
        KeyValue::new("messaging.operation.type", "send"),
        KeyValue::new("messaging.destination.name", record.topic.clone()),
        KeyValue::new("tim.sdkappid", record.sdk_app_id as i64),
        KeyValue::new("tim.command", record.command.clone()),
    ];
    if let Some(key) = &record.key {
        attributes.push(KeyValue::new("messaging.kafka.message.key", key.clone()));
    }
    if let Some(id) = crate::event::id_of(&record.payload) {
        attributes.push(KeyValue::new("cloudevents.event_id", id));
    }
    attributes
}

fn producer_span(
    record: &Record,
    trace: &RecordTrace,
    attributes: Vec<KeyValue>,
    events: Vec<Event>,
    status: Status,
) -> Finished {
    Finished {
        name: format!("send {}", record.topic).into(),
        kind: SpanKind::Producer,
        context: trace.context,
        parent: Some(trace.parent_span_id),
        parent_remote: false,
        start: UNIX_EPOCH + Duration::from_millis(record.accepted_at_ms),
        end: SystemTime::now(),
        attributes,
        events,
        links: Vec::new(),
        status,
    }
}

/// A span as it ended.
pub struct Finished {
    pub name: Cow<'static, str>,
    pub kind: SpanKind,
    pub context: TraceContext,
    pub parent: Option<u64>,
    pub parent_remote: bool,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<KeyValue>,
    pub events: Vec<Event>,
    pub links: Vec<Link>,
    pub status: Status,
}

/// A link to the span of `context` (the relay's consumer span links its producer span).
pub fn link_to(context: TraceContext) -> Link {
    Link::new(otel_context(context), Vec::new(), 0)
}

fn otel_context(context: TraceContext) -> SpanContext {
    SpanContext::new(
        TraceId::from(context.trace_id),
        SpanId::from(context.span_id),
        if context.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        },
        false,
        TraceState::default(),
    )
}
