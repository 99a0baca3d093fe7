//! A reader we did not write: Kafka's own Java console consumer reads the bridge's
//! topic back, and sees the same keys, headers and bytes as librdkafka.

use std::collections::HashMap;

use crate::broker::{brokers, Kafka};
use crate::helpers::*;

/// What the console consumer printed of one record: its key, headers and value bytes.
type Printed = (String, HashMap<String, String>, Vec<u8>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkas_console_consumer_reads_the_same_keys_headers_and_bytes_as_librdkafka() {
    let app = spawn_app().await;
    let texts = ["red packet 红包 🧧", "tab\\tand \\\"quotes\\\"", "plain"];
    for (i, text) in texts.iter().enumerate() {
        let answer = app
            .callback(SENT, &text_message(&format!("console-{i}"), text))
            .await;
        assert_eq!(answer.status, 200);
    }
    let ours = read_records(&app.topic, texts.len()).await;

    let bootstrap = brokers().to_owned();
    let topic = app.topic.clone();
    let printed = tokio::task::spawn_blocking(move || {
        Kafka::tool_on_path(
            "console-consumer",
            &[
                "--bootstrap-server",
                &bootstrap,
                "--topic",
                &topic,
                "--from-beginning",
                "--max-messages",
                "3",
                "--timeout-ms",
                "60000",
                "--property",
                "print.partition=true",
                "--property",
                "print.offset=true",
                "--property",
                "print.headers=true",
                "--property",
                "print.key=true",
                "--property",
                "key.separator=\u{1f}",
                "--property",
                "headers.separator=\u{1e}",
            ],
        )
    })
    .await
    .unwrap();

    let theirs: HashMap<(i32, i64), Printed> = printed
        .split_terminator('\n')
        // Newer releases print a deprecation notice for --property among the records.
        .filter(|line| line.starts_with("Partition:"))
        .map(|line| {
            let fields: Vec<&str> = line.splitn(5, '\u{1f}').collect();
            assert_eq!(
                fields.len(),
                5,
                "partition, offset, headers, key, value: {line:?}"
            );
            let partition = fields[0].trim_start_matches("Partition:").parse().unwrap();
            let offset = fields[1].trim_start_matches("Offset:").parse().unwrap();
            let headers = fields[2]
                .split('\u{1e}')
                .map(|h| {
                    let (k, v) = h
                        .split_once(':')
                        .unwrap_or_else(|| panic!("a header: {line:?}"));
                    (k.to_owned(), v.to_owned())
                })
                .collect();
            (
                (partition, offset),
                (fields[3].to_owned(), headers, fields[4].as_bytes().to_vec()),
            )
        })
        .collect();
    assert_eq!(theirs.len(), ours.len(), "{printed}");
    for r in &ours {
        let (key, headers, value) = &theirs[&(r.partition, r.offset)];
        assert_eq!(Some(key), r.key.as_ref());
        assert_eq!(headers, &r.headers);
        assert_eq!(value, &r.payload, "the same bytes");
    }
    assert!(
        ours.iter()
            .any(|r| r.value["data"]["body"][0]["text"] == "red packet 红包 🧧"),
        "{ours:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_compressed_events_are_read_back_by_kafkas_console_consumer() {
    let app = spawn_app_with(|s| {
        s.kafka
            .producer
            .insert("compression.type".into(), "zstd".into());
    })
    .await;
    let answer = app
        .callback(SENT, &text_message("zstd-1", "compressed 压缩"))
        .await;
    assert_eq!(answer.status, 200);
    let ours = read_records(&app.topic, 1).await;

    let (bootstrap, topic) = (brokers().to_owned(), app.topic.clone());
    let printed = tokio::task::spawn_blocking(move || {
        Kafka::tool_on_path(
            "console-consumer",
            &[
                "--bootstrap-server",
                &bootstrap,
                "--topic",
                &topic,
                "--from-beginning",
                "--max-messages",
                "1",
                "--timeout-ms",
                "60000",
            ],
        )
    })
    .await
    .unwrap();
    let value = printed
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no record printed: {printed}"));
    assert_eq!(value.as_bytes(), ours[0].payload.as_slice());
    assert!(value.contains("compressed 压缩"), "{value}");
}
