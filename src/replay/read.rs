//! The reading side of a replay: one thread polls Kafka and hands each record to its
//! partition's worker; a worker writes (or delivers) in order and commits past it.

use super::*;

/// A record for a worker: written out when `event` is some, only committed past otherwise.
pub(super) struct Item {
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) offset: i64,
    pub(super) line: Option<(Value, Value)>,
}

/// Where a replay stops, and the start time, if it starts at one.
pub(super) struct Bounds {
    pub(super) ends: HashMap<(String, i32), i64>,
    pub(super) until: Until,
    pub(super) not_before: Option<i64>,
    pub(super) count: Option<u64>,
    /// Records left before the end, for the progress line (-1 when following).
    pub(super) remaining: Arc<AtomicI64>,
}

pub(super) fn poll(
    consumer: &BaseConsumer,
    bounds: Bounds,
    filter: &Filter,
    workers: &HashMap<(String, i32), mpsc::Sender<Item>>,
    stop: &AtomicBool,
) -> Result<(), ReplayError> {
    let Bounds {
        ends,
        until,
        not_before,
        count,
        remaining,
    } = bounds;
    let until = &until;
    let mut open: HashMap<(String, i32), i64> = consumer
        .assignment()
        .map_err(ReplayError::kafka("reading the assignment"))?
        .elements()
        .iter()
        .filter_map(|e| {
            let key = (e.topic().to_owned(), e.partition());
            let start = match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            };
            let end = ends[&key];
            (matches!(until, Until::Follow) || start < end).then_some((key, end))
        })
        .collect();
    if !matches!(until, Until::Follow) {
        let positions = consumer
            .assignment()
            .map_err(ReplayError::kafka("reading the assignment"))?;
        let left: i64 = positions
            .elements()
            .iter()
            .map(
                |e| match (e.offset(), open.get(&(e.topic().to_owned(), e.partition()))) {
                    (Offset::Offset(o), Some(end)) => (end - o).max(0),
                    _ => 0,
                },
            )
            .sum();
        remaining.store(left, Ordering::Relaxed);
    }
    let mut admitted = 0u64;
    while !open.is_empty() && !stop.load(Ordering::Relaxed) && count.is_none_or(|c| admitted < c) {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = message.map_err(ReplayError::kafka("cannot read from Kafka"))?;
        let key = (m.topic().to_owned(), m.partition());
        let Some(&end) = open.get(&key) else { continue };
        if !matches!(until, Until::Follow) {
            remaining.fetch_sub(1, Ordering::Relaxed);
        }
        let timestamp = m.timestamp().to_millis();
        let past_time = matches!(until, Until::Time(t) if timestamp.is_some_and(|ts| ts > *t));
        if !matches!(until, Until::Follow) && (m.offset() >= end || past_time) {
            open.remove(&key);
            continue;
        }
        let event: Value = match m.payload().map(serde_json::from_slice) {
            Some(Ok(v)) => v,
            _ => Value::Null,
        };
        let too_early = not_before.is_some_and(|t| timestamp.is_some_and(|ts| ts < t));
        let line = (!too_early && filter.admits(&event)).then(|| {
            admitted += 1;
            let mut meta = serde_json::json!({
                "topic": m.topic(),
                "partition": m.partition(),
                "offset": m.offset(),
                "timestamp": timestamp,
                "key": m.key().map(String::from_utf8_lossy),
            });
            if let Some(trace) = trace_of(&m) {
                meta["trace_id"] = format!("{:032x}", trace.trace_id).into();
            }
            (meta, event)
        });
        let item = Item {
            topic: key.0.clone(),
            partition: key.1,
            offset: m.offset(),
            line,
        };
        if workers[&key].blocking_send(item).is_err() {
            return Err(ReplayError::WriterStopped);
        }
        if !matches!(until, Until::Follow) && m.offset() + 1 >= end {
            open.remove(&key);
        }
    }
    Ok(())
}

pub(super) async fn worker(
    mut items: mpsc::Receiver<Item>,
    sink: Arc<Sink>,
    consumer: Arc<BaseConsumer>,
    commit: bool,
    written: Arc<AtomicU64>,
) -> Result<(), ReplayError> {
    let mut since_commit = 0;
    while let Some(item) = items.recv().await {
        if let Some((meta, event)) = &item.line {
            sink.write(meta, event).await?;
            written.fetch_add(1, Ordering::Relaxed);
        }
        since_commit += 1;
        if commit && (sink.commits_each() || since_commit >= 200 || items.is_empty()) {
            sink.flush().await?;
            let mut position = TopicPartitionList::new();
            position
                .add_partition_offset(&item.topic, item.partition, Offset::Offset(item.offset + 1))
                .map_err(ReplayError::kafka("cannot commit"))?;
            let consumer = Arc::clone(&consumer);
            tokio::task::spawn_blocking(move || consumer.commit(&position, CommitMode::Sync))
                .await?
                .map_err(ReplayError::kafka("cannot commit"))?;
            since_commit = 0;
        }
    }
    sink.flush().await
}

pub(super) fn spawn_progress(
    written: Arc<AtomicU64>,
    remaining: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = Instant::now();
        let (mut last_report, mut reported) = (Instant::now(), 0);
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let n = written.load(Ordering::Relaxed);
            // Following and idle: nothing new to say.
            let idle = n == reported && remaining.load(Ordering::Relaxed) < 0;
            if last_report.elapsed() >= Duration::from_secs(2) && !idle {
                reported = n;
                let rate = n as f64 / started.elapsed().as_secs_f64();
                match remaining.load(Ordering::Relaxed) {
                    left if left >= 0 => eprintln!(
                        "replay: {n} events, {rate:.0} events/s, about {left} records left"
                    ),
                    _ => eprintln!("replay: {n} events, {rate:.0} events/s, following"),
                }
                last_report = Instant::now();
            }
        }
        let n = written.load(Ordering::Relaxed);
        eprintln!(
            "replay: done, {n} events in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    })
}

/// The trace a record's `traceparent` header names, when it has a valid one.
fn trace_of(m: &rdkafka::message::BorrowedMessage<'_>) -> Option<crate::telemetry::TraceContext> {
    use rdkafka::message::Headers;
    let headers = m.headers()?;
    headers
        .iter()
        .find(|h| h.key == "traceparent")
        .and_then(|h| std::str::from_utf8(h.value?).ok())
        .and_then(crate::telemetry::TraceContext::parse)
}
