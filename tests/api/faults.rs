//! The faults of daily operation, made for real: a spool on a filesystem that is
//! really full while Kafka is away.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::broker::{Kafka, Layout};
use crate::helpers::*;

/// A tmpfs of `size` mounted for the test, unmounted when dropped.
struct SmallFilesystem {
    dir: PathBuf,
}

impl SmallFilesystem {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap().keep();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("mount runs");
        assert!(
            output.status.success(),
            "cannot mount a {size} tmpfs on {} (the test needs root): {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn text_body(key: &str) -> String {
    format!(
        r#"{{"CallbackCommand":"{SENT}","From_Account":"a","To_Account":"b","MsgKey":"{key}",
        "MsgBody":[{{"MsgType":"TIMTextElem","MsgContent":{{"Text":"{}"}}}}]}}"#,
        "磁盘已满 ".repeat(60)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_on_a_full_disk_answers_503_then_200_again_by_itself_once_kafka_drains_it() {
    let disk = SmallFilesystem::mount("4m");
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

    let deadline = Instant::now() + Duration::from_secs(60);
    while record_count_on(&bootstrap, &app.topic).await < acked.len() as i64 {
        assert!(
            Instant::now() < deadline,
            "not everything answered 200 reached Kafka"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let count = record_count_on(&bootstrap, &app.topic).await as usize;
    let records = read_records_from(&bootstrap, &app.topic, count).await;
    let mut read: Vec<String> = records.iter().map(|r| r.key.clone().unwrap()).collect();
    read.sort();
    read.dedup();
    let mut expected = acked.clone();
    expected.sort();
    assert_eq!(read, expected, "every callback answered 200 is in Kafka");
}
