use std::fs;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::recovery::written_end;
use super::*;
use crate::delivery::{BoxFuture, Buffer, Done, Outcome};

/// Stands in for Kafka: records what it is sent, and confirms it or holds on to it.
#[derive(Clone, Default)]
pub(super) struct Kafka {
    seen: Arc<Mutex<Vec<Record>>>,
    held: Arc<Mutex<Vec<(Done, Record)>>>,
    away: bool,
}

impl Sink for Kafka {
    fn dispatch(&self, record: Record, done: Done) {
        self.seen.lock().unwrap().push(record.clone());
        if self.away {
            self.held.lock().unwrap().push((done, record));
        } else {
            done(Outcome::Delivered, &record);
        }
    }
    fn shutdown(&self, _: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    fn delivered(&self) -> u64 {
        (self.seen.lock().unwrap().len() - self.held.lock().unwrap().len()) as u64
    }
}

impl Kafka {
    pub(super) fn away() -> Self {
        Kafka {
            away: true,
            ..Default::default()
        }
    }
    pub(super) fn keys(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.key.clone().unwrap())
            .collect()
    }
}

pub(super) fn record(key: &str, payload_bytes: usize) -> Record {
    Record {
        topic: "tim.c2c.messages".into(),
        key: Some(key.into()),
        payload: vec![b'x'; payload_bytes],
        command: "C2C.CallbackAfterSendMsg".into(),
        sdk_app_id: 1400000000,
        accepted_at_ms: now_ms(),
        trace: None,
    }
}

pub(super) fn open(dir: &Path, max_bytes: u64, kafka: &Kafka) -> Arc<Spool> {
    Spool::open(
        dir,
        max_bytes,
        100_000,
        Arc::new(kafka.clone()),
        Arc::new(Metrics::default()),
    )
    .unwrap()
}

pub(super) async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "not within 10 s: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

/// A spool holding `keys`, none confirmed, as a run that lost Kafka would leave it.
async fn left_in_spool(dir: &Path, keys: &[&str]) {
    let kafka = Kafka::away();
    let spool = open(dir, 1 << 20, &kafka);
    append_all(&spool, keys).await;
    assert_eq!(spool.finish().await, keys.len() as u64);
}

async fn append_all(spool: &Spool, keys: &[&str]) {
    for key in keys {
        spool.append(vec![record(key, 100)]).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appended_records_go_to_kafka_in_order_and_are_let_go() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = Kafka::default();
    let spool = open(dir.path(), 1 << 20, &kafka);

    append_all(&spool, &["a", "b", "c", "d"]).await;

    eventually("all confirmed", || spool.waiting() == 0).await;
    assert_eq!(kafka.keys(), ["a", "b", "c", "d"]);
    spool.finish().await;
    assert_eq!(read_watermark(dir.path()), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_fsyncs_and_all_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = Kafka::default();
    let metrics = Arc::new(Metrics::default());
    let spool = Spool::open(
        dir.path(),
        1 << 24,
        100_000,
        Arc::new(kafka.clone()),
        Arc::clone(&metrics),
    )
    .unwrap();

    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let spool = Arc::clone(&spool);
            tokio::spawn(async move { spool.append(vec![record(&format!("k{i}"), 200)]).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }

    eventually("all dispatched", || kafka.seen.lock().unwrap().len() == 500).await;
    let fsyncs = metrics.encode();
    let count: u64 = fsyncs
        .lines()
        .find(|l| l.starts_with("tim_bridge_spool_fsync_seconds_count"))
        .and_then(|l| l.split(' ').nth(1))
        .unwrap()
        .parse()
        .unwrap();
    assert!(count < 500, "500 appends took {count} fsyncs");
    spool.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_kafka_did_not_confirm_is_sent_again_after_reopening_in_order() {
    let dir = tempfile::tempdir().unwrap();
    left_in_spool(dir.path(), &["a", "b", "c"]).await;

    let second_run = Kafka::default();
    let spool = open(dir.path(), 1 << 20, &second_run);
    append_all(&spool, &["d"]).await;

    eventually("all confirmed", || spool.waiting() == 0).await;
    assert_eq!(second_run.keys(), ["a", "b", "c", "d"]);
    spool.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_kafka_confirmed_is_not_sent_again_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = Kafka::default();
    let spool = open(dir.path(), 1 << 20, &kafka);
    append_all(&spool, &["a", "b"]).await;
    eventually("all confirmed", || spool.waiting() == 0).await;
    spool.finish().await;
    drop(spool);

    let again = Kafka::default();
    let spool = open(dir.path(), 1 << 20, &again);
    append_all(&spool, &["c"]).await;

    eventually("confirmed", || spool.waiting() == 0).await;
    assert_eq!(again.keys(), ["c"]);
    spool.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_torn_by_a_crash_is_cut_and_the_ones_before_it_kept() {
    let dir = tempfile::tempdir().unwrap();
    left_in_spool(dir.path(), &["a", "b", "c"]).await;
    let segment = segments(dir.path()).pop().unwrap();
    let end = written_end(&fs::read(&segment).unwrap()) as u64;
    // The last 7 bytes of "c" never reached the disk: zeros, as filled ahead.
    let file = OpenOptions::new().write(true).open(&segment).unwrap();
    file.write_all_at(&[0; 7], end - 7).unwrap();

    let kafka = Kafka::default();
    let spool = open(dir.path(), 1 << 20, &kafka);

    eventually("dispatched", || kafka.seen.lock().unwrap().len() == 2).await;
    assert_eq!(kafka.keys(), ["a", "b"]);
    assert!(
        (written_end(&fs::read(&segment).unwrap()) as u64) < end - 7,
        "the torn bytes are cut"
    );
    append_all(&spool, &["d"]).await;
    eventually("the next append follows", || kafka.keys().len() == 3).await;
    assert_eq!(kafka.keys(), ["a", "b", "d"]);
    spool.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_torn_at_the_end_of_a_file_without_zeros_ahead_is_cut_too() {
    let dir = tempfile::tempdir().unwrap();
    left_in_spool(dir.path(), &["a", "b", "c"]).await;
    let segment = segments(dir.path()).pop().unwrap();
    let end = written_end(&fs::read(&segment).unwrap()) as u64;
    // As a spool written before segments were filled ahead, torn in its last record.
    let file = OpenOptions::new().write(true).open(&segment).unwrap();
    file.set_len(end - 7).unwrap();

    let kafka = Kafka::default();
    let spool = open(dir.path(), 1 << 20, &kafka);
    eventually("dispatched", || kafka.seen.lock().unwrap().len() == 2).await;
    append_all(&spool, &["d"]).await;
    eventually("the next append follows", || kafka.keys().len() == 3).await;
    assert_eq!(kafka.keys(), ["a", "b", "d"]);
    spool.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_are_filled_with_zeros_ahead_and_a_restart_reads_past_them_as_the_end() {
    let dir = tempfile::tempdir().unwrap();
    left_in_spool(dir.path(), &["a", "b", "c"]).await;
    let segment = segments(dir.path()).pop().unwrap();
    let bytes = fs::read(&segment).unwrap();
    assert!(
        bytes.len() > written_end(&bytes) + 64 * 1024,
        "{} bytes on file, {} written",
        bytes.len(),
        written_end(&bytes)
    );

    let kafka = Kafka::default();
    let metrics = Arc::new(Metrics::default());
    let spool = Spool::open(
        dir.path(),
        1 << 20,
        64,
        Arc::new(kafka.clone()),
        Arc::clone(&metrics),
    )
    .unwrap();
    eventually("sent again", || kafka.keys().len() == 3).await;
    append_all(&spool, &["d"]).await;
    eventually("the next append follows", || kafka.keys().len() == 4).await;
    assert_eq!(kafka.keys(), ["a", "b", "c", "d"]);
    assert_eq!(metrics.spool_corrupt.get(), 0, "zeros are not corruption");
    spool.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_written_while_the_housekeeping_fills_zeros_ahead_are_all_there_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first_run = Kafka::away();
    let spool = open(dir.path(), 1 << 26, &first_run);
    // 2.4 MB over several housekeeping rounds: fills of 1 MiB ahead run beside groups.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let spool = Arc::clone(&spool);
            tokio::spawn(async move {
                for i in 0..300 {
                    spool
                        .append(vec![record(&format!("w{w}-{i:03}"), 2000)])
                        .await
                        .unwrap();
                    if i % 10 == 0 {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(spool.finish().await, 1200);
    drop(spool);

    let kafka = Kafka::default();
    let metrics = Arc::new(Metrics::default());
    let spool = Spool::open(
        dir.path(),
        1 << 26,
        100_000,
        Arc::new(kafka.clone()),
        Arc::clone(&metrics),
    )
    .unwrap();
    eventually("every record sent again", || kafka.keys().len() == 1200).await;
    assert_eq!(metrics.spool_corrupt.get(), 0, "no record erased by zeros");
    for w in 0..4 {
        let mine: Vec<String> = kafka
            .keys()
            .into_iter()
            .filter(|k| k.starts_with(&format!("w{w}-")))
            .collect();
        let expected: Vec<String> = (0..300).map(|i| format!("w{w}-{i:03}")).collect();
        assert_eq!(mine, expected, "each writer's records, once, in order");
    }
    spool.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_middle_record_is_skipped_counted_and_the_others_sent() {
    let dir = tempfile::tempdir().unwrap();
    left_in_spool(dir.path(), &["a", "b", "c"]).await;
    let segment = segments(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&segment).unwrap();
    let middle = written_end(&bytes) / 2;
    bytes[middle] ^= 0xff;
    fs::write(&segment, bytes).unwrap();

    let kafka = Kafka::default();
    let metrics = Arc::new(Metrics::default());
    let spool = Spool::open(
        dir.path(),
        1 << 20,
        100,
        Arc::new(kafka.clone()),
        Arc::clone(&metrics),
    )
    .unwrap();

    eventually("dispatched", || kafka.seen.lock().unwrap().len() == 2).await;
    assert_eq!(kafka.keys(), ["a", "c"]);
    assert!(
        metrics
            .encode()
            .contains("tim_bridge_spool_corrupt_records_total 2"),
        "counted at recovery and when read"
    );
    spool.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_several_read_windows_is_sent_in_order_past_a_damaged_record() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<String> = (0..400).map(|i| format!("k{i:03}")).collect();
    let away = Kafka::away();
    let spool = open(dir.path(), 1 << 26, &away);
    for key in &keys {
        spool.append(vec![record(key, 7_000)]).await.unwrap();
    }
    assert_eq!(spool.finish().await, 400);
    drop(spool);
    let segment = segments(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&segment).unwrap();
    assert!(bytes.len() as u64 > 2 * READ_WINDOW + 100_000);
    // Damage the record that holds the byte just past two windows.
    let target = (2 * READ_WINDOW + 50_000) as usize;
    let (mut start, mut index) = (0, 0);
    loop {
        let len = u32::from_le_bytes(bytes[start + 4..start + 8].try_into().unwrap()) as usize;
        if start + frame::HEADER + len > target {
            break;
        }
        start += frame::HEADER + len;
        index += 1;
    }
    bytes[target] ^= 0xff;
    fs::write(&segment, bytes).unwrap();

    let kafka = Kafka::default();
    let spool = open(dir.path(), 1 << 26, &kafka);
    eventually("dispatched", || kafka.seen.lock().unwrap().len() == 399).await;
    let expected: Vec<String> = keys
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != index)
        .map(|(_, k)| k.clone())
        .collect();
    assert_eq!(kafka.keys(), expected);
    spool.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_roll_over_and_are_deleted_once_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let first_run = Kafka::away();
    let spool = open(dir.path(), 1 << 20, &first_run);
    for i in 0..1000 {
        spool
            .append(vec![record(&format!("k{i}"), 700)])
            .await
            .unwrap();
    }
    assert!(
        segments(dir.path()).len() >= 3,
        "750 kB written in segments of 256 KiB"
    );
    spool.finish().await;
    drop(spool);

    let kafka = Kafka::default();
    let spool = open(dir.path(), 1 << 20, &kafka);

    eventually("all confirmed", || spool.waiting() == 0).await;
    eventually("files deleted", || segments(dir.path()).len() == 1).await;
    let files: Vec<Vec<u8>> = segments(dir.path())
        .iter()
        .map(|p| fs::read(p).unwrap())
        .collect();
    let left: usize = files.iter().map(|f| written_end(f)).sum();
    assert!(
        (left as u64) < ROLL_WHEN_DRAINED,
        "{left} bytes of records left after the drain"
    );
    assert!(
        files.iter().all(|f| f.len() as u64 <= 256 * 1024),
        "zeros ahead at most to the segment's size"
    );
    assert_eq!(kafka.keys().len(), 1000);
    spool.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_refuses_appends_and_keeps_what_it_has() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = Kafka::away();
    let spool = open(dir.path(), 64 * 1024, &kafka);
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..200 {
        match spool.append(vec![record(&format!("k{i}"), 1000)]).await {
            Ok(()) => accepted.push(format!("k{i}")),
            Err(Rejected::SpoolFull) => refused += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(refused > 0 && !accepted.is_empty());
    spool.finish().await;
    drop(spool);

    let after = Kafka::default();
    let spool = open(dir.path(), 64 * 1024, &after);

    eventually("everything accepted arrives", || {
        after.keys().len() == accepted.len()
    })
    .await;
    assert_eq!(after.keys(), accepted);
    spool.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_bridge_cannot_open_the_same_spool() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = Kafka::default();
    let spool = open(dir.path(), 1 << 20, &kafka);

    let second = Spool::open(
        dir.path(),
        1 << 20,
        10,
        Arc::new(kafka.clone()),
        Arc::new(Metrics::default()),
    );

    assert!(second.err().unwrap().to_string().contains("in use"));
    spool.finish().await;
}

/// A Kafka whose client code panics on the first record it is handed, on the
/// spool's reader thread, as a bug there would.
struct Panicking;

impl Sink for Panicking {
    fn dispatch(&self, _: Record, _: Done) {
        panic!("a bug in the sink");
    }
    fn shutdown(&self, _: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    fn delivered(&self) -> u64 {
        0
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_thread_that_dies_marks_the_spool_broken_and_keeps_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    let spool = Spool::open(
        dir.path(),
        1 << 20,
        100,
        Arc::new(Panicking),
        Arc::clone(&metrics),
    )
    .unwrap();
    assert_eq!(spool.broken(), None);
    spool.append(vec![record("a", 10)]).await.unwrap();
    eventually("the spool says it is broken", || spool.broken().is_some()).await;
    let reason = spool.broken().unwrap();
    assert!(
        reason.contains("spool-reader") && reason.contains("a bug in the sink"),
        "{reason}"
    );
    assert_eq!(metrics.spool_thread_deaths.get(), 1);
    assert_eq!(
        spool
            .shutdown(Duration::from_millis(50))
            .await
            .left_in_spool,
        1
    );
    drop(spool);
    let kafka = Kafka::default();
    let reopened = open(dir.path(), 1 << 20, &kafka);
    eventually("the record is sent after a restart", || {
        kafka.keys() == ["a"]
    })
    .await;
    assert_eq!(reopened.broken(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_held_back_by_kafka_catches_up_in_order_while_appends_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = Kafka::away();
    // Ten records out at once: the rest wait in the log (64 KiB each, more than the
    // spool holds in memory for a caught-up reader: it reads them from the file).
    let spool = Spool::open(
        dir.path(),
        1 << 27,
        10,
        Arc::new(kafka.clone()),
        Arc::new(Metrics::default()),
    )
    .unwrap();
    let keys: Vec<String> = (0..300).map(|i| format!("k{i:03}")).collect();
    for key in &keys[..200] {
        spool.append(vec![record(key, 64 * 1024)]).await.unwrap();
    }
    eventually("ten records are out", || {
        kafka.held.lock().unwrap().len() == 10
    })
    .await;
    // Kafka answers from now on: the reader catches up while new appends arrive.
    let confirm = {
        let kafka = kafka.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                let held = std::mem::take(&mut *kafka.held.lock().unwrap());
                for (done, record) in held {
                    done(Outcome::Delivered, &record);
                }
                if kafka.seen.lock().unwrap().len() == 300 && kafka.held.lock().unwrap().is_empty()
                {
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    for key in &keys[200..] {
        spool.append(vec![record(key, 100)]).await.unwrap();
    }
    eventually("all 300 are sent", || {
        kafka.seen.lock().unwrap().len() == 300
    })
    .await;
    confirm.join().unwrap();
    assert_eq!(kafka.keys(), keys, "each exactly once, in order");
    eventually("all are confirmed", || spool.waiting() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_whose_caller_goes_away_is_still_written_and_the_next_ones_answered() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = Kafka::default();
    let spool = open(dir.path(), 1 << 20, &kafka);
    // Polled once (framed into a group, a commit round started), then dropped.
    let mut gone = Box::pin(spool.append(vec![record("gone", 100)]));
    assert!(
        futures_util::poll!(&mut gone).is_pending(),
        "not yet fsynced"
    );
    drop(gone);
    append_all(&spool, &["next"]).await;
    eventually("both sent", || kafka.keys().len() == 2).await;
    assert_eq!(kafka.keys(), ["gone", "next"]);
    spool.finish().await;
}

#[test]
fn a_reader_is_handed_only_the_written_group_that_starts_where_it_is() {
    let group = |segment, from, to| Fresh {
        segment,
        from,
        to,
        records: vec![frame::Spooled {
            seq: from,
            record: record("k", 10),
        }],
    };
    let mut log = Log {
        segments: Vec::new(),
        bytes: 0,
        fresh: [group(0, 0, 100), group(0, 100, 250), group(7, 0, 80)].into(),
        fresh_bytes: 330,
    };
    assert!(log.take_fresh(0, 50).is_none(), "no group starts mid-way");
    let taken = log.take_fresh(0, 100).expect("the group at 100");
    assert_eq!((taken.to, taken.records[0].seq), (250, 100));
    assert_eq!(log.fresh_bytes, 80, "the passed group is dropped too");
    assert!(log.take_fresh(7, 40).is_none(), "the reader is past it");
    assert!(log.fresh.is_empty());
    assert_eq!(log.fresh_bytes, 0);
}
