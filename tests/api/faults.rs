//! The faults of daily operation, made for real: a spool on a filesystem that is
//! really full while Kafka is away; a producer librdkafka declares fatal (made so by
//! librdkafka's own fault injection, the one fault no broker here can cause on demand).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tim_kafka_bridge::settings::Ack;

use crate::broker::{brokers, Kafka, Layout};
use crate::chaos::Disk;
use crate::helpers::*;

const WITHDRAWN: &str = "C2C.CallbackAfterMsgWithDraw";

fn text_body(key: &str) -> String {
    text_message(key, &"磁盘已满 ".repeat(60))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_on_a_full_disk_answers_503_then_200_again_by_itself_once_kafka_drains_it() {
    let disk = Disk::tmpfs("4m", 10_000);
    let mut kafka = tokio::task::block_in_place(|| Kafka::start(Layout::default()));
    let bootstrap = kafka.bootstrap();
    let app = spawn_app_with(|s| {
        s.spool_dir = disk.path().join("spool");
        s.kafka.brokers = Some(bootstrap.clone());
    })
    .await;
    app.wait_until_ready().await;
    kafka.kill();

    let mut acked = Vec::new();
    let (mut n, mut refused_in_a_row) = (0, 0);
    while refused_in_a_row < 20 {
        let key = format!("full-{n}");
        n += 1;
        match app.callback(SENT, &text_body(&key)).await.status.as_u16() {
            200 => {
                acked.push(key);
                refused_in_a_row = 0;
            }
            503 => refused_in_a_row += 1,
            other => panic!("answered {other} for {key}"),
        }
        assert!(n < 20_000, "4 MiB never filled");
    }
    let metrics = app.get("/metrics").await.1;
    assert!(
        metrics.contains("tim_bridge_spool_write_failing 1"),
        "{metrics}"
    );
    println!(
        "disk full: {} callbacks answered 200 before the 503s",
        acked.len()
    );

    let back = Instant::now();
    tokio::task::block_in_place(|| kafka.restart());
    loop {
        let key = format!("full-{n}");
        n += 1;
        if app.callback(SENT, &text_body(&key)).await.status == 200 {
            acked.push(key);
            break;
        }
        if back.elapsed() > Duration::from_secs(60) {
            let metrics = app.get("/metrics").await.1;
            let spool: Vec<_> = std::fs::read_dir(disk.path().join("spool"))
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    format!("{:?} {}", e.file_name(), e.metadata().unwrap().len())
                })
                .collect();
            let held: Vec<_> = std::fs::read_dir("/proc/self/fd")
                .unwrap()
                .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
                .filter(|p| p.starts_with(disk.path()))
                .collect();
            panic!("still 503 a minute after Kafka returned; spool {spool:?}; open {held:?}\n{metrics}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "answered 200 again {:.1} s after Kafka was restarted",
        back.elapsed().as_secs_f64()
    );
    for _ in 0..50 {
        let key = format!("full-{n}");
        n += 1;
        assert_eq!(
            app.callback(SENT, &text_body(&key)).await.status,
            200,
            "{key}"
        );
        acked.push(key);
    }
    let metrics = app.get("/metrics").await.1;
    assert!(
        metrics.contains("tim_bridge_spool_write_failing 0"),
        "{metrics}"
    );

    let count = settled_count(&bootstrap, &app.topic, acked.len()).await;
    let records = read_records_from(&bootstrap, &app.topic, count).await;
    assert_eq!(
        chaos_report("disk-full", &acked, 1, &records),
        0,
        "callbacks answered 200 lost"
    );
    let mut read: Vec<String> = records.iter().map(|r| r.key.clone().unwrap()).collect();
    read.sort();
    read.dedup();
    let mut expected = acked.clone();
    expected.sort();
    assert_eq!(read, expected, "every callback answered 200 is in Kafka");
}

/// Makes the bridge's producer fatal with librdkafka's own fault injection, as an
/// idempotent producer fenced or out of sequence would be.
fn make_fatal(app: &TestApp) {
    use rdkafka::producer::Producer as _;
    let producer = app.producer.as_ref().expect("an in-process bridge");
    let reason = std::ffi::CString::new("injected by the test").unwrap();
    // SAFETY: a live client's pointer; librdkafka copies the reason.
    let code = unsafe {
        rdkafka_sys::rd_kafka_test_fatal_error(
            producer.client().native_ptr(),
            rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
            reason.as_ptr(),
        )
    };
    assert_eq!(
        code,
        rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_producer_librdkafka_made_fatal_is_replaced_and_every_event_arrives_in_order() {
    for ack in [Ack::Durable, Ack::Memory] {
        let app = Arc::new(spawn_app_with(|s| s.ack = ack).await);
        app.wait_until_ready().await;
        let running = Arc::new(AtomicBool::new(true));
        let senders: Vec<_> = (0..8)
            .map(|sender| {
                let (app, running) = (Arc::clone(&app), Arc::clone(&running));
                tokio::spawn(async move {
                    let mut acked = Vec::new();
                    let mut n = 0;
                    while running.load(Ordering::Relaxed) {
                        let key = format!("fatal-{sender}-{n}");
                        n += 1;
                        let recall = format!(
                            r#"{{"CallbackCommand":"{WITHDRAWN}","From_Account":"a","To_Account":"b","MsgKey":"{key}"}}"#
                        );
                        if app.callback(SENT, &sent_body(&key)).await.status == 200
                            && app.callback(WITHDRAWN, &recall).await.status == 200
                        {
                            acked.push(key);
                        }
                    }
                    acked
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(1)).await;
        make_fatal(&app);
        tokio::time::sleep(Duration::from_secs(3)).await;
        running.store(false, Ordering::Relaxed);
        let mut acked = Vec::new();
        for sender in senders {
            acked.extend(sender.await.unwrap());
        }
        let count = settled_count(brokers(), &app.topic, 2 * acked.len()).await;
        let records = read_records(&app.topic, count).await;
        let scenario = format!("fatal-producer-{ack:?}").to_lowercase();
        assert_eq!(chaos_report(&scenario, &acked, 2, &records), 0);
        assert_each_recall_after_its_send(&scenario, &acked, &records);
        let metrics = app.get("/metrics").await.1;
        assert!(
            metrics.contains("tim_bridge_producer_restarts_total 1"),
            "{metrics}"
        );
        println!(
            "fatal producer, ack={ack:?}: {} sends and recalls answered 200, {} records, duplicates {}",
            acked.len(),
            records.len(),
            records.len() - 2 * acked.len()
        );
    }
}

/// Kafka down when the bridge starts, in both ack modes: callbacks are taken (durable)
/// or wait for room (memory answers once Kafka is back), the topics are created when
/// Kafka comes up, with kafka.partitions (not by the broker with its own default), and
/// every event answered 200 is read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_started_while_kafka_is_down_creates_its_topics_when_it_comes_up() {
    let mut broker = tokio::task::block_in_place(|| Kafka::start(Layout::default()));
    tokio::task::block_in_place(|| broker.kill());
    let app = spawn_app_with(|s| {
        s.kafka.brokers = Some(broker.bootstrap());
        s.ack = Ack::Durable;
    })
    .await;
    for n in 0..5 {
        let key = format!("taken-with-kafka-down-{n}");
        assert_eq!(app.callback(SENT, &sent_body(&key)).await.status, 200);
    }
    tokio::task::block_in_place(|| {
        broker.restart();
        broker.wait_ready();
    });
    let records = read_records_from(&broker.bootstrap(), &app.topic, 5).await;
    assert_eq!(records.len(), 5);
    let partitions = {
        let (bootstrap, topic) = (broker.bootstrap(), app.topic.clone());
        tokio::task::spawn_blocking(move || {
            use rdkafka::consumer::{BaseConsumer, Consumer};
            let consumer: BaseConsumer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .create()
                .unwrap();
            let metadata = consumer
                .fetch_metadata(Some(&topic), Duration::from_secs(10))
                .unwrap();
            metadata.topics()[0].partitions().len() as i32
        })
        .await
        .unwrap()
    };
    assert_eq!(partitions, PARTITIONS, "made by the bridge, as configured");
    assert_eq!(app.shutdown().await.left_in_spool, 0);
}
