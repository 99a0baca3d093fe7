//! OpenTelemetry traces of a callback, from Tencent's request to Kafka's confirmation:
//! a server span per callback and a producer span per event, whose context each record
//! carries in its `traceparent` header.
//!
//! Spans are built as finished `SpanData` and handed to a bounded queue that a task
//! drains to the OTLP exporter: the callback path never waits for the backend, and a
//! span that finds the queue full, or whose export fails, is dropped and counted in
//! `tim_bridge_trace_spans_dropped_total`. The producer span's context travels in the
//! record (through the spool too), so it is ended when Kafka confirms the event, long
//! after the callback was answered: a child that outlives its parent. With tracing off
//! (no endpoint) none of this exists.

mod export;

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
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
    /// Starts the exporter task, or None when tracing is off.
    pub fn start(
        settings: &TracingSettings,
        dropped: Counter,
    ) -> Result<Option<std::sync::Arc<Self>>, SettingsError> {
        let Some((url, sampler)) = settings.checked()? else {
            return Ok(None);
        };
        let exporter = export::exporter(&url, &settings.service_name)
            .map_err(|e| SettingsError::new("tracing.endpoint", e))?;
        let (queue, spans) = mpsc::channel(settings.queue_spans);
        tokio::spawn(export::run(spans, exporter, dropped.clone()));
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
        match traceparent.and_then(TraceContext::parse) {
            Some(parent) => {
                let mut own = parent.child();
                own.sampled = self.sampler.sampled(Some(parent.sampled), parent.trace_id);
                (own, Some(parent))
            }
            None => (
                TraceContext::root(|trace_id| self.sampler.sampled(None, trace_id)),
                None,
            ),
        }
    }

    /// Hands a finished span to the exporter, or drops it (counted) when the queue is full.
    pub fn finish(&self, span: Finished) {
        if !span.context.sampled {
            return;
        }
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
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: span.status,
            instrumentation_scope: self.scope.clone(),
        };
        if self.queue.try_send(data).is_err() {
            self.dropped.inc();
        }
    }

    /// The producer span of `record`, ended now that Kafka confirmed it.
    pub fn delivered(&self, record: &Record, trace: RecordTrace, partition: i32, offset: i64) {
        if !trace.context.sampled {
            return;
        }
        let mut attributes = vec![
            KeyValue::new("messaging.system", "kafka"),
            KeyValue::new("messaging.operation.type", "send"),
            KeyValue::new("messaging.destination.name", record.topic.clone()),
            KeyValue::new("messaging.destination.partition.id", partition.to_string()),
            KeyValue::new("messaging.kafka.offset", offset),
            KeyValue::new("tim.sdkappid", record.sdk_app_id as i64),
            KeyValue::new("tim.command", record.command.clone()),
        ];
        if let Some(key) = &record.key {
            attributes.push(KeyValue::new("messaging.kafka.message.key", key.clone()));
        }
        if let Some(id) = crate::event::id_of(&record.payload) {
            attributes.push(KeyValue::new("cloudevents.event_id", id));
        }
        self.finish(Finished {
            name: format!("send {}", record.topic).into(),
            kind: SpanKind::Producer,
            context: trace.context,
            parent: Some(trace.parent_span_id),
            parent_remote: false,
            start: UNIX_EPOCH + Duration::from_millis(record.accepted_at_ms),
            end: SystemTime::now(),
            attributes,
            status: Status::Unset,
        });
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
    pub status: Status,
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
