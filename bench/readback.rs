//! Reads a topic from the beginning while the load runs, until it has been idle for
//! a few seconds: counts records and distinct keys (every callback answered 200 must
//! be there exactly once) and the end-to-end latency, from the bridge receiving a
//! callback (`data.received_at`) to its event being read here.
//! `cargo run --release --example bench-readback -- BROKERS TOPIC IDLE_SECONDS`

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

fn main() {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().expect("BROKERS");
    let topic = args.next().expect("TOPIC");
    let idle: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "bench-readback")
        .set("enable.auto.commit", "false")
        // tansu answers a fetch only when its wait runs out, even with data ready:
        // librdkafka's 500 ms default would be measured as end-to-end latency.
        .set("fetch.wait.max.ms", "5")
        .create()
        .expect("a consumer");
    let partitions = consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .expect("metadata")
        .topics()[0]
        .partitions()
        .len() as i32;
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(&topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let (mut records, mut keys, mut latencies_ms) = (0u64, HashSet::new(), Vec::new());
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_secs(idle) {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        last = Instant::now();
        records += 1;
        keys.insert(m.key().map(|k| k.to_vec()));
        let event: serde_json::Value =
            serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or_default();
        if let Some(received) = event["data"]["received_at"]
            .as_str()
            .and_then(|t| humantime::parse_rfc3339(t).ok())
        {
            if let Ok(age) = SystemTime::now().duration_since(received) {
                latencies_ms.push(age.as_secs_f64() * 1000.0);
            }
        }
    }
    latencies_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        latencies_ms
            .get(
                ((latencies_ms.len() as f64 * p) as usize)
                    .min(latencies_ms.len().saturating_sub(1)),
            )
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "{{\"records\":{records},\"distinct_keys\":{},\"e2e_p50_ms\":{:.1},\"e2e_p99_ms\":{:.1}}}",
        keys.len(),
        pct(0.5),
        pct(0.99)
    );
}
