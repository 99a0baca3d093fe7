//! librdkafka's statistics (`kafka.statistics_interval_ms`) as the bridge's metrics:
//! per broker the round-trip time, the requests in flight and waiting to be sent, and
//! the send errors and retries; per topic the batch sizes and the messages librdkafka
//! holds. Also whether the idempotent producer holds its producer id, for readiness.
//! See <https://github.com/confluentinc/librdkafka/blob/master/STATISTICS.md>.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Deserialize;

use crate::metrics::{BrokerLabels, BrokerStatLabels, Metrics, TopicLabels, TopicStatLabels};

#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    brokers: HashMap<String, Broker>,
    #[serde(default)]
    topics: HashMap<String, Topic>,
    eos: Option<Eos>,
}

#[derive(Deserialize)]
struct Eos {
    idemp_state: String,
}

#[derive(Deserialize)]
struct Broker {
    nodeid: i32,
    nodename: String,
    #[serde(default)]
    outbuf_cnt: i64,
    #[serde(default)]
    waitresp_cnt: i64,
    #[serde(default)]
    txerrs: u64,
    #[serde(default)]
    txretries: u64,
    #[serde(default)]
    rtt: Window,
}

/// A rolling window of librdkafka's, in microseconds (or messages, or bytes).
#[derive(Deserialize, Default)]
struct Window {
    #[serde(default)]
    avg: i64,
    #[serde(default)]
    p99: i64,
    #[serde(default)]
    cnt: i64,
}

#[derive(Deserialize)]
struct Topic {
    #[serde(default)]
    batchsize: Window,
    #[serde(default)]
    batchcnt: Window,
    #[serde(default)]
    partitions: HashMap<String, Partition>,
}

#[derive(Deserialize)]
struct Partition {
    partition: i32,
    #[serde(default)]
    msgq_cnt: i64,
    #[serde(default)]
    xmit_msgq_cnt: i64,
}

/// librdkafka's totals seen last, per broker: its counters restart with a new
/// producer, ours go on (they grow by what librdkafka's grew).
#[derive(Default)]
pub(super) struct Totals {
    last: Mutex<HashMap<(String, &'static str), u64>>,
}

impl Totals {
    fn grown(&self, broker: &str, which: &'static str, now: u64) -> u64 {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let before = last.insert((broker.to_owned(), which), now).unwrap_or(0);
        if now >= before {
            now - before
        } else {
            now
        }
    }
}

/// Feeds one statistics document into `metrics`; whether the idempotent producer holds
/// its id, when the document says.
pub(super) fn record(json: &[u8], metrics: &Metrics, totals: &Totals) -> Option<bool> {
    let document: Document = match serde_json::from_slice(json) {
        Ok(document) => document,
        Err(error) => {
            tracing::debug!(error = %error, "Cannot read librdkafka's statistics.");
            return None;
        }
    };
    let seconds = |micros: i64| micros as f64 / 1_000_000.0;
    // The bootstrap entries (-1) stand for no broker.
    for broker in document.brokers.values().filter(|b| b.nodeid >= 0) {
        let name = &broker.nodename;
        let labels = BrokerLabels {
            broker: name.clone(),
        };
        metrics
            .kafka_broker_in_flight
            .get_or_create(&labels)
            .set(broker.waitresp_cnt);
        metrics
            .kafka_broker_waiting
            .get_or_create(&labels)
            .set(broker.outbuf_cnt);
        metrics
            .kafka_broker_errors
            .get_or_create(&labels)
            .inc_by(totals.grown(name, "txerrs", broker.txerrs));
        metrics
            .kafka_broker_retries
            .get_or_create(&labels)
            .inc_by(totals.grown(name, "txretries", broker.txretries));
        // An empty window (no request in the interval) says nothing new.
        if broker.rtt.cnt > 0 {
            for (stat, value) in [("avg", broker.rtt.avg), ("p99", broker.rtt.p99)] {
                metrics
                    .kafka_broker_rtt
                    .get_or_create(&BrokerStatLabels {
                        broker: name.clone(),
                        stat,
                    })
                    .set(seconds(value));
            }
        }
    }
    for (name, topic) in &document.topics {
        let queued: i64 = topic
            .partitions
            .values()
            .filter(|p| p.partition >= 0)
            .map(|p| p.msgq_cnt + p.xmit_msgq_cnt)
            .sum();
        metrics
            .kafka_topic_queued
            .get_or_create(&TopicLabels {
                topic: name.clone(),
            })
            .set(queued);
        for (window, gauge) in [
            (&topic.batchcnt, &metrics.kafka_topic_batch_messages),
            (&topic.batchsize, &metrics.kafka_topic_batch_bytes),
        ] {
            if window.cnt > 0 {
                for (stat, value) in [("avg", window.avg), ("p99", window.p99)] {
                    gauge
                        .get_or_create(&TopicStatLabels {
                            topic: name.clone(),
                            stat,
                        })
                        .set(value);
                }
            }
        }
    }
    document.eos.map(|eos| eos.idemp_state == "Assigned")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cut from a document librdkafka 2.12 wrote for the bridge's producer.
    const DOCUMENT: &str = r#"{"name":"tim-kafka-bridge#producer-1","msg_cnt":3,
      "brokers":{
        "127.0.0.1:9092/bootstrap":{"nodeid":-1,"nodename":"127.0.0.1:9092","outbuf_cnt":0,"waitresp_cnt":0,"txerrs":0,"txretries":0,"rtt":{"avg":0,"p99":0,"cnt":0}},
        "127.0.0.1:9092/1":{"nodeid":1,"nodename":"127.0.0.1:9092","outbuf_cnt":2,"waitresp_cnt":1,"txerrs":4,"txretries":7,"rtt":{"min":900,"max":5000,"avg":1500,"p99":4800,"cnt":12}}},
      "topics":{"tim.c2c.messages":{"topic":"tim.c2c.messages","batchsize":{"avg":2048,"p99":8192,"cnt":5},"batchcnt":{"avg":3,"p99":9,"cnt":5},
        "partitions":{"0":{"partition":0,"msgq_cnt":1,"xmit_msgq_cnt":2},"-1":{"partition":-1,"msgq_cnt":5,"xmit_msgq_cnt":0}}}},
      "eos":{"idemp_state":"Assigned","idemp_stateage":10}}"#;

    #[test]
    fn a_statistics_document_becomes_broker_and_topic_metrics() {
        let (metrics, totals) = (Metrics::default(), Totals::default());
        assert_eq!(record(DOCUMENT.as_bytes(), &metrics, &totals), Some(true));
        let page = metrics.encode();
        for line in [
            r#"tim_bridge_kafka_broker_rtt_seconds{broker="127.0.0.1:9092",stat="p99"} 0.0048"#,
            r#"tim_bridge_kafka_broker_requests_in_flight{broker="127.0.0.1:9092"} 1"#,
            r#"tim_bridge_kafka_broker_requests_waiting{broker="127.0.0.1:9092"} 2"#,
            r#"tim_bridge_kafka_broker_send_errors_total{broker="127.0.0.1:9092"} 4"#,
            r#"tim_bridge_kafka_topic_batch_messages{topic="tim.c2c.messages",stat="avg"} 3"#,
            r#"tim_bridge_kafka_topic_batch_bytes{topic="tim.c2c.messages",stat="p99"} 8192"#,
            r#"tim_bridge_kafka_topic_queued_messages{topic="tim.c2c.messages"} 3"#,
        ] {
            assert!(page.contains(line), "{line}\n{page}");
        }
        // A replaced producer starts its totals again from 0: ours go on.
        let restarted = DOCUMENT.replace(r#""txerrs":4"#, r#""txerrs":1"#);
        record(restarted.as_bytes(), &metrics, &totals);
        assert!(metrics
            .encode()
            .contains(r#"tim_bridge_kafka_broker_send_errors_total{broker="127.0.0.1:9092"} 5"#));
    }
}
