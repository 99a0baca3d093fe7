//! What only a real cluster shows: three Apache Kafka nodes, topics with replication
//! factor 3 and `min.insync.replicas=2`, the bridge producing with acks=all and
//! idempotence, 16 senders, and nodes killed, stopped and restarted under the load.
//! Every callback answered 200 is read back. The tests share one cluster, one at a time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use tim_kafka_bridge::settings::Ack;
use tokio::sync::Mutex;

use crate::broker::{Kafka, Layout};
use crate::helpers::*;

const SENDERS: usize = 16;
const WITHDRAWN: &str = "C2C.CallbackAfterMsgWithDraw";

async fn cluster() -> tokio::sync::MutexGuard<'static, Kafka> {
    static CLUSTER: tokio::sync::OnceCell<Mutex<Kafka>> = tokio::sync::OnceCell::const_new();
    CLUSTER
        .get_or_init(|| async {
            let kafka = tokio::task::spawn_blocking(|| {
                Kafka::start(Layout {
                    nodes: 3,
                    ..Layout::default()
                })
            })
            .await
            .unwrap();
            Mutex::new(kafka)
        })
        .await
        .lock()
        .await
}

async fn bridge_on(
    kafka: &Kafka,
    ack: Ack,
    customize: impl FnOnce(&mut tim_kafka_bridge::settings::Settings),
) -> TestApp {
    let bootstrap = kafka.bootstrap();
    spawn_app_with(|s| {
        s.ack = ack;
        s.kafka.brokers = Some(bootstrap);
        s.kafka.replication_factor = 3;
        customize(s);
    })
    .await
}

/// 16 senders, each sending a message and then its recall, over and over, until stopped.
struct Load {
    running: Arc<AtomicBool>,
    senders: Vec<tokio::task::JoinHandle<Sent>>,
}

/// What one sender was answered: the keys whose send, and whose recall, got 200.
#[derive(Default)]
struct Sent {
    sends: Vec<String>,
    recalls: Vec<String>,
    refused: usize,
}

impl Load {
    fn start(app: &Arc<TestApp>, prefix: &str) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let senders = (0..SENDERS)
            .map(|sender| {
                let (app, running, prefix) = (Arc::clone(app), Arc::clone(&running), prefix.to_owned());
                tokio::spawn(async move {
                    let mut sent = Sent::default();
                    let mut n = 0;
                    while running.load(Ordering::Relaxed) {
                        let key = format!("{prefix}-{sender}-{n}");
                        n += 1;
                        if app.callback(SENT, &sent_body(&key)).await.status != 200 {
                            sent.refused += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                        sent.sends.push(key.clone());
                        let recall = format!(
                            r#"{{"CallbackCommand":"{WITHDRAWN}","From_Account":"a","To_Account":"b","MsgKey":"{key}"}}"#
                        );
                        if app.callback(WITHDRAWN, &recall).await.status == 200 {
                            sent.recalls.push(key);
                        } else {
                            sent.refused += 1;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    sent
                })
            })
            .collect();
        Load { running, senders }
    }

    async fn stop(self) -> Sent {
        self.running.store(false, Ordering::Relaxed);
        let mut all = Sent::default();
        for sender in self.senders {
            let sent = sender.await.unwrap();
            all.sends.extend(sent.sends);
            all.recalls.extend(sent.recalls);
            all.refused += sent.refused;
        }
        all
    }
}

/// Reads the whole topic once it stops growing, and checks that every send and recall
/// answered 200 is there, each recall after its send on the same partition. Returns
/// the number of duplicates (records beyond one per answered callback).
async fn every_answered_callback_is_in_kafka(
    kafka: &Kafka,
    topic: &str,
    sent: &Sent,
    scenario: &str,
) -> usize {
    let answered = sent.sends.len() + sent.recalls.len();
    assert!(
        sent.sends.len() > 100,
        "{scenario}: only {} sends answered 200",
        sent.sends.len()
    );
    let count = settled_count(&kafka.bootstrap(), topic, answered).await;
    let records = read_records_from(&kafka.bootstrap(), topic, count).await;
    let stories = stories(&records);
    let lost =
        |keys: &[String], kind: &str| keys.iter().filter(|k| !landed(&stories, k, kind)).count();
    let lost_sends = lost(&sent.sends, "tim.c2c.message.sent");
    let lost_recalls = lost(&sent.recalls, "tim.c2c.message.withdrawn");
    let duplicates = records.len() - answered.min(records.len());
    println!(
        "{scenario}: answered 200: {} sends + {} recalls; refused: {}; records: {}; lost: {}; duplicates: {duplicates}",
        sent.sends.len(),
        sent.recalls.len(),
        sent.refused,
        records.len(),
        lost_sends + lost_recalls
    );
    assert_eq!(
        lost_sends + lost_recalls,
        0,
        "{scenario}: callbacks answered 200 that never reached Kafka"
    );
    assert_each_recall_after_its_send(scenario, &sent.recalls, &records);
    duplicates
}

fn leader_of_partition_0(kafka: &Kafka, topic: &str) -> usize {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap())
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    metadata.topics()[0].partitions()[0].leader() as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leader_of_a_busy_partition_killed_under_load_loses_nothing_in_either_ack_mode() {
    let mut kafka = cluster().await;
    for (ack, name) in [(Ack::Durable, "durable"), (Ack::Memory, "memory")] {
        let app = Arc::new(bridge_on(&kafka, ack, |_| {}).await);
        app.wait_until_ready().await;
        let load = Load::start(&app, &format!("leader-{name}"));
        tokio::time::sleep(Duration::from_secs(3)).await;
        let leader = leader_of_partition_0(&kafka, &app.topic);
        kafka.kill_node(leader);
        tokio::time::sleep(Duration::from_secs(5)).await;
        tokio::task::block_in_place(|| kafka.restart());
        tokio::time::sleep(Duration::from_secs(2)).await;
        let sent = load.stop().await;
        let scenario = format!("leader {leader} killed, ack={name}");
        let duplicates =
            every_answered_callback_is_in_kafka(&kafka, &app.topic, &sent, &scenario).await;
        if duplicates > 0 {
            println!("{scenario}: the duplicates are events sent again after librdkafka gave up on an attempt whose write had landed");
        }
        if ack == Ack::Durable {
            assert_eq!(
                sent.refused, 0,
                "{scenario}: the spool answers 200 through a leader change"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_two_of_three_nodes_down_durable_keeps_answering_and_memory_turns_503_and_all_arrives()
{
    let mut kafka = cluster().await;
    for (ack, name) in [(Ack::Durable, "durable"), (Ack::Memory, "memory")] {
        let app = Arc::new(
            bridge_on(&kafka, ack, |s| {
                s.queue_capacity = 200;
                s.kafka.readiness_interval_ms = 500;
            })
            .await,
        );
        app.wait_until_ready().await;
        let load = Load::start(&app, &format!("quorum-{name}"));
        tokio::time::sleep(Duration::from_secs(2)).await;
        let survivor = leader_of_partition_0(&kafka, &app.topic);
        for node in (1..=3).filter(|n| *n != survivor) {
            kafka.kill_node(node);
        }
        let deadline = Instant::now() + Duration::from_secs(40);
        let readiness = loop {
            let (status, body) = app.get("/readyz").await;
            let expected = match ack {
                Ack::Durable => status == 200 && body.starts_with("degraded:"),
                Ack::Memory => status == 503,
            };
            if expected {
                break body;
            }
            assert!(
                Instant::now() < deadline,
                "ack={name}: /readyz still says {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        println!("two nodes down, ack={name}: /readyz says {readiness}");
        assert!(
            readiness.contains("Kafka has confirmed none")
                || readiness.contains("the Kafka cluster does not answer"),
            "{readiness}"
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        tokio::task::block_in_place(|| kafka.restart());
        tokio::time::sleep(Duration::from_secs(3)).await;
        let sent = load.stop().await;
        let scenario = format!("two of three nodes down, ack={name}");
        every_answered_callback_is_in_kafka(&kafka, &app.topic, &sent, &scenario).await;
        match ack {
            Ack::Durable => assert_eq!(sent.refused, 0, "{scenario}: every callback answered 200"),
            Ack::Memory => assert!(sent.refused > 0, "{scenario}: a full queue answers 503"),
        }
        app.wait_until_ready().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_of_all_three_nodes_under_load_loses_nothing() {
    let mut kafka = cluster().await;
    let app = Arc::new(bridge_on(&kafka, Ack::Durable, |_| {}).await);
    app.wait_until_ready().await;
    let load = Load::start(&app, "rolling");
    for node in 1..=3 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        tokio::task::block_in_place(|| {
            kafka.stop_node(node);
            kafka.restart();
        });
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent = load.stop().await;
    every_answered_callback_is_in_kafka(&kafka, &app.topic, &sent, "rolling restart").await;
    assert_eq!(sent.refused, 0);
}
