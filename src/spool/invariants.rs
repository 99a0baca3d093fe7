//! The spool's bookkeeping invariants (listed in `mod.rs`), each held by a test here.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use super::recovery::{new_segment, segment_firsts, segment_path, SPARE};
use super::tests::{eventually, open, record, Kafka};
use super::*;

/// Every segment's first sequence and the sequences of the records in it, in name order
/// (a segment the spool deletes between the listing and the read is left out).
fn on_disk(dir: &Path) -> Vec<(u64, Vec<u64>)> {
    segment_firsts(dir)
        .unwrap()
        .into_iter()
        .filter_map(|first| {
            let bytes = match fs::read(segment_path(dir, first)) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
                Err(e) => panic!("{e}"),
            };
            let seqs = frame::scan(&bytes).records.iter().map(|r| r.seq).collect();
            Some((first, seqs))
        })
        .collect()
}

fn immutable(path: &Path, on: bool) {
    let flag = if on { "+i" } else { "-i" };
    let status = Command::new("chattr").arg(flag).arg(path).status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "chattr {flag} {} (the test needs root and chattr)",
        path.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_never_go_backwards_whatever_the_watermark_says() {
    // As a full disk left a spool: `confirmed` still says 0, the drained segments are
    // gone, and an empty segment named 262890 is all that is left.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("confirmed"), "0").unwrap();
    fs::File::create(segment_path(dir.path(), 262_890)).unwrap();

    let away = Kafka::away();
    let spool = open(dir.path(), 1 << 20, &away);
    for i in 0..600 {
        spool
            .append(vec![record(&format!("k{i}"), 1000)])
            .await
            .unwrap();
    }
    spool.finish().await;
    drop(spool);

    let segments = on_disk(dir.path());
    assert!(segments.len() >= 2, "600 kB rolled: {segments:?}");
    let seqs: Vec<u64> = segments.iter().flat_map(|(_, s)| s.clone()).collect();
    assert_eq!(seqs, (262_890..262_890 + 600).collect::<Vec<_>>());
    for (first, seqs) in &segments {
        assert!(
            seqs.iter().all(|s| s >= first),
            "seg-{first} holds {seqs:?}"
        );
    }

    let kafka = Kafka::default();
    let spool = open(dir.path(), 1 << 20, &kafka);
    eventually("all sent after the restart", || kafka.keys().len() == 600).await;
    let expected: Vec<String> = (0..600).map(|i| format!("k{i}")).collect();
    assert_eq!(kafka.keys(), expected, "in sequence order");
    spool.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_whose_files_disagree_is_refused_saying_what_was_found() {
    // What the old recovery wrote after it lost its watermark: seg-100 holding record 5.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = Vec::new();
    frame::encode(5, &record("x", 10), &mut bytes);
    let path = segment_path(dir.path(), 100);
    fs::write(&path, &bytes).unwrap();

    let refused = Spool::open(
        dir.path(),
        1 << 20,
        10,
        Arc::new(Kafka::default()),
        Arc::new(Metrics::default()),
    )
    .err()
    .expect("refused");
    let why = refused.to_string();
    assert!(
        why.contains("inconsistent") && why.contains("holds record 5"),
        "{why}"
    );
    assert_eq!(fs::read(&path).unwrap(), bytes, "nothing touched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_deleted_that_the_recorded_watermark_does_not_cover() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = Kafka::default();
    let spool = open(dir.path(), 1 << 20, &kafka);
    spool.append(vec![record("first", 100)]).await.unwrap();
    eventually("confirmed", || spool.waiting() == 0).await;
    let confirmed = dir.path().join("confirmed");
    // The `confirmed` file cannot be written (EPERM, for real), as a failing disk would.
    immutable(&confirmed, true);
    for i in 0..1000 {
        spool
            .append(vec![record(&format!("k{i}"), 700)])
            .await
            .unwrap();
    }
    eventually("all confirmed by Kafka", || spool.waiting() == 0).await;
    eventually("the failure is seen", || spool.trouble().is_some()).await;
    tokio::time::sleep(HOUSEKEEPING * 3).await;
    let segments = on_disk(dir.path());
    let kept: Vec<u64> = segments.iter().flat_map(|(_, s)| s.clone()).collect();
    assert!(segments.len() >= 3, "{} segments", segments.len());
    assert!(
        (1..=1000).all(|seq| kept.contains(&seq)),
        "every record above the recorded watermark (1) kept"
    );
    assert!(
        spool.trouble().unwrap().contains("cannot record"),
        "{:?}",
        spool.trouble()
    );
    let page = spool.shared.metrics.encode();
    assert!(
        page.contains("tim_bridge_spool_progress_failing 1"),
        "{page}"
    );

    immutable(&confirmed, false);
    eventually("recorded again", || spool.trouble().is_none()).await;
    eventually("then deleted", || on_disk(dir.path()).len() == 1).await;
    spool.finish().await;
    drop(spool);
    let again = Kafka::default();
    let spool = open(dir.path(), 1 << 20, &again);
    tokio::time::sleep(HOUSEKEEPING * 2).await;
    assert!(again.keys().is_empty(), "nothing sent twice");
    spool.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_is_never_named_after_a_file_that_exists() {
    let dir = tempfile::tempdir().unwrap();
    let live = new_segment(dir.path(), 7).unwrap();
    fs::write(&live.path, b"records").unwrap();
    let refused = new_segment(dir.path(), 7).err().expect("refused");
    assert_eq!(refused.kind(), io::ErrorKind::AlreadyExists);
    assert_eq!(fs::read(&live.path).unwrap(), b"records");

    // A roll with nothing written since the last one keeps the segment it has.
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path(), 1 << 20, &Kafka::away());
    let writer = Arc::clone(spool.commit.writer());
    writer.locked().try_roll().unwrap();
    writer.locked().try_roll().unwrap();
    assert_eq!(spool.shared.log.locked().segments.len(), 1);
    spool.append(vec![record("a", 100)]).await.unwrap();
    tokio::time::sleep(HOUSEKEEPING * 3).await;
    assert_eq!(spool.finish().await, 1);
    drop(spool);
    let kafka = Kafka::default();
    let spool = open(dir.path(), 1 << 20, &kafka);
    eventually("kept", || kafka.keys() == ["a"]).await;
    spool.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roll_takes_the_spare_and_a_drained_segment_becomes_the_next_spare() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = Kafka::away();
    let spool = open(dir.path(), 1 << 20, &kafka);
    let spare = dir.path().join(SPARE);
    let inode = fs::metadata(&spare).expect("a spare at start").ino();
    for i in 0..400 {
        spool
            .append(vec![record(&format!("k{i}"), 1000)])
            .await
            .unwrap();
    }
    let second = segment_firsts(dir.path()).unwrap()[1];
    assert_eq!(
        fs::metadata(segment_path(dir.path(), second))
            .unwrap()
            .ino(),
        inode,
        "the second segment is the spare renamed"
    );
    spool.finish().await;
    drop(spool);

    let kafka = Kafka::default();
    let spool = open(dir.path(), 1 << 20, &kafka);
    let first = segment_firsts(dir.path()).unwrap()[0];
    let first_inode = fs::metadata(segment_path(dir.path(), first)).unwrap().ino();
    fs::remove_file(&spare).ok();
    eventually("drained", || segment_firsts(dir.path()).unwrap().len() == 1).await;
    eventually("the spare is back", || spare.exists()).await;
    assert_eq!(fs::metadata(&spare).unwrap().ino(), first_inode);
    assert_eq!(fs::metadata(&spare).unwrap().len(), 0);
    spool.finish().await;
}
