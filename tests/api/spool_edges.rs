//! The spool's edges, each a finding of issue 39 made real: a full disk during a drain
//! with restarts, a filesystem out of inodes, a broker hung longer than librdkafka
//! used to wait. Every answer is kept and every partition read back (`chaos.rs`).

use std::sync::Arc;
use std::time::Duration;

use tim_kafka_bridge::settings::Ack;

use crate::broker::{Kafka, Layout};
use crate::chaos::{read_back, run_schedule, Disk, Load, Rig, Step, Step::*, Topics};
use crate::helpers::*;

fn assert_nothing_lost_or_reordered(scenario: &str, outcome: &crate::chaos::Outcome) {
    println!("chaos: scenario={scenario} {outcome}");
    assert!(outcome.answered > 0, "{scenario}: nothing answered 200");
    assert_eq!(outcome.lost, 0, "{scenario}: callbacks answered 200 lost");
    assert_eq!(outcome.out_of_order, 0, "{scenario}: recalls before sends");
    assert_eq!(
        outcome.unexplained_copies, 0,
        "{scenario}: copies of another event"
    );
}

/// Kafka hung under load, the disk filled by another writer, the backlog drained while
/// the disk is full, restarts with the disk full and after, Kafka hung again with a
/// kill -9 and a SIGTERM 2 s apart (issue 39, finding 1, at a smaller scale).
const FULL_DISK_CHAIN: &[Step] = &[
    CreateLateTopic,
    Load(3),
    Hang(0),
    Load(12),
    FillDisk,
    Load(2),
    Wake(0),
    Load(8),
    Kill9,
    Start,
    Load(3),
    FreeDisk,
    Load(2),
    Hang(0),
    Load(12),
    Kill9,
    Start,
    Load(2),
    Terminate,
    Start,
    Wake(0),
    Load(4),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_during_a_drain_with_restarts_loses_nothing_answered_200() {
    // Segments of 16 MiB, so that the second hang rolls one; a reader held to 256
    // events in flight, so that a restart under the hang does not reach the last one.
    full_disk_chain(
        "full-disk-chain",
        "128m",
        "spool_max_bytes = 67108864\nqueue_capacity = 256",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_disk_chain_with_a_one_mib_spool_and_a_small_queue_loses_nothing_either() {
    full_disk_chain(
        "full-disk-chain-1mib",
        "48m",
        "spool_max_bytes = 1048576\nqueue_capacity = 64",
    )
    .await;
}

async fn full_disk_chain(scenario: &str, disk: &str, settings: &str) {
    let mut rig = Rig::new(1, Disk::tmpfs(disk, 10_000), settings).await;
    let outcome = run_schedule(&mut rig, FULL_DISK_CHAIN, 16, 2).await;
    assert_nothing_lost_or_reordered(scenario, &outcome);
}

/// Free blocks, no free inode: progress is still recorded and segments still roll, so a
/// SIGTERM leaves nothing to send again and a 4 MiB spool never fills (1 MiB segments;
/// at most 1,024 events unconfirmed, under 1 MiB: however slow the machine, what goes
/// through is several times the spool).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_inodes_the_spool_still_records_progress_and_rolls() {
    let settings = "spool_max_bytes = 4194304\nqueue_capacity = 1024";
    let mut rig = Rig::new(1, Disk::tmpfs("256m", 64), settings).await;
    let steps = [
        CreateLateTopic,
        Load(1),
        ExhaustInodes,
        Load(15),
        Terminate,
        Start,
        Load(3),
    ];
    let outcome = run_schedule(&mut rig, &steps, 16, 1).await;
    assert_nothing_lost_or_reordered("out-of-inodes", &outcome);
    assert_eq!(
        outcome.duplicated, 0,
        "a SIGTERM after every confirmation leaves nothing to send again"
    );
    // Not answered 200: only those sent while the bridge restarted.
    let log = rig.bridge.log();
    for trouble in [
        "spool is full",
        "cannot start a new segment",
        "cannot record",
    ] {
        assert!(!log.contains(trouble), "{trouble}:\n{log}");
    }
    let spooled_mb = outcome.answered as f64 * 800.0 / (1 << 20) as f64;
    println!("out-of-inodes: about {spooled_mb:.0} MiB through a 4 MiB spool");
    assert!(spooled_mb > 4.0, "more went through than the spool holds");
}

/// Kafka SIGSTOPped for 150 s under load, longer than librdkafka's old 120 s
/// `message.timeout.ms`: in both ack modes every callback answered 200 arrives, and
/// every recall after its send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_hung_for_150_s_reorders_nothing_in_either_mode() {
    let hang = Duration::from_secs(
        std::env::var("TIM_BRIDGE_HANG_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(150),
    );
    let kafka = tokio::task::block_in_place(|| Kafka::start(Layout::default()));
    let brokers = kafka.bootstrap();
    let mut apps = Vec::new();
    for ack in [Ack::Durable, Ack::Memory] {
        let brokers = brokers.clone();
        let app = spawn_app_with(|s| {
            s.ack = ack;
            s.kafka.brokers = Some(brokers);
        })
        .await;
        app.wait_until_ready().await;
        let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
        let load = Load::start(port, 4, Duration::from_millis(20), &format!("{ack:?}"));
        apps.push((ack, Arc::new(app), load));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    kafka.pause(true);
    tokio::time::sleep(hang).await;
    kafka.pause(false);
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (ack, app, load) in apps {
        let (acked, refused) = load.stop().await;
        let topics = Topics {
            main: app.topic.clone(),
            late: app.other_topic.clone(),
        };
        let mut outcome = read_back(&brokers, &topics, &acked).await;
        outcome.refused = refused;
        assert_nothing_lost_or_reordered(&format!("hung-broker-{ack:?}"), &outcome);
    }
    drop(kafka);
}

/// The very same signed request replayed after 110,000 others inside its freshness
/// window (the old filter kept 100,000 entries, so at ~830 callbacks/s and above it
/// published the replay again): answered OK, published once, nothing forgotten early.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_request_replayed_after_110_000_others_inside_its_window_is_published_once() {
    let app = Arc::new(
        spawn_app_with(|s| {
            s.ack = Ack::Memory;
            s.queue_capacity = 200_000;
            // A window long enough for a debug build to send them all inside it.
            s.request_time_skew_secs = 600;
            s.dedup_max_bytes = 256 << 20;
        })
        .await,
    );
    let query = format!("/callback?{}", signed_query(SENT));
    let tracked = sent_body("tracked");
    let first = app.post(&query, Some("application/json"), &tracked).await;
    assert_eq!(first.status, 200);

    let others = 110_000;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let senders: Vec<_> = (0..32)
        .map(|_| {
            let (app, next) = (Arc::clone(&app), Arc::clone(&next));
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= others {
                        return;
                    }
                    let answer = app.callback(SENT, &sent_body(&format!("o{i}"))).await;
                    assert_eq!(answer.status, 200, "o{i}");
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    let replay = app.post(&query, Some("application/json"), &tracked).await;
    assert_eq!(replay.status, 200, "a replay is answered OK");

    let count = settled_count(crate::broker::brokers(), &app.topic, others + 1).await;
    assert_eq!(count, others + 1, "the replay was not published again");
    let records = read_records(&app.topic, count).await;
    let tracked_copies = records
        .iter()
        .filter(|r| r.key.as_deref() == Some("tracked"))
        .count();
    assert_eq!(tracked_copies, 1);
    let metrics = app.get("/metrics").await.1;
    assert!(
        metrics.contains(r#"tim_bridge_dedup_evictions_total{kind="request"} 0"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"tim_bridge_duplicates_dropped_total{kind="request"} 1"#),
        "{metrics}"
    );
}
