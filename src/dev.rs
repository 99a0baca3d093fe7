//! `serve --dev`: librdkafka's in-process mock cluster, a known app and token, and
//! the commands to try it, so a newcomer sees an event flow with one command.

use std::time::Duration;

use anyhow::Context as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::{Offset, TopicPartitionList};

use crate::route::Routes;
use crate::settings::{App, KafkaConfig, Secret, Settings};

pub const SDKAPPID: u64 = 1400000000;
pub const TOKEN: &str = crate::settings::DEV_TOKEN;

/// Keeps the mock cluster alive while the bridge runs.
pub struct DevCluster {
    _cluster: MockCluster<'static, DefaultProducerContext>,
}

/// Fills in what `--dev` provides: unsigned callbacks allowed, its known token accepted,
/// an app when none is configured and, when no brokers
/// are given, the mock cluster with every topic created.
pub fn prepare(settings: &mut Settings) -> anyhow::Result<Option<DevCluster>> {
    settings.dev = true;
    settings.allow_unsigned = true;
    // Never the default `./spool` a real `serve` from the same folder would send to
    // its cluster: a directory of this run's own, unless one was chosen.
    if settings.spool_dir == Settings::default().spool_dir {
        settings.spool_dir =
            std::env::temp_dir().join(format!("tim-kafka-bridge-dev-spool-{}", std::process::id()));
    }
    if settings.apps.is_empty() {
        settings.apps.push(App {
            sdk_app_id: SDKAPPID,
            tokens: vec![Secret::new(TOKEN)],
            ..App::default()
        });
    }
    if settings.kafka.brokers.is_some() {
        return Ok(None);
    }
    let cluster = MockCluster::new(1).context("cannot start librdkafka's mock cluster")?;
    settings.kafka.brokers = Some(cluster.bootstrap_servers());
    settings.kafka.create_topics = false;
    for topic in Routes::new(&KafkaConfig::try_from(&*settings)?).topics() {
        cluster
            .create_topic(topic, settings.kafka.partitions, 1)
            .with_context(|| format!("cannot create topic {topic} in the mock cluster"))?;
    }
    Ok(Some(DevCluster { _cluster: cluster }))
}

/// What to paste to see an event flow.
pub fn instructions(settings: &Settings, port: u16) -> String {
    let app = &settings.apps[0];
    let brokers = settings.kafka.brokers.as_deref().unwrap_or("");
    let url = format!(
        "http://127.0.0.1:{port}{}?SdkAppid={}&CallbackCommand=C2C.CallbackAfterSendMsg&contenttype=json&ClientIP=127.0.0.1&OptPlatform=RESTAPI",
        settings.callback_path, app.sdk_app_id
    );
    let signed = match app.tokens.first() {
        Some(token) if token.expose() == TOKEN => format!(
            "T=$(date +%s); S=$(printf '%s%s' {TOKEN} \"$T\" | sha256sum | cut -d' ' -f1)\ncurl -sS \"{url}&RequestTime=$T&Sign=$S\" \\\n"
        ),
        Some(_) => format!("T=$(date +%s); S=$(printf '%s%s' \"$TOKEN\" \"$T\" | sha256sum | cut -d' ' -f1)\ncurl -sS \"{url}&RequestTime=$T&Sign=$S\" \\\n"),
        None => format!("curl -sS \"{url}\" \\\n"),
    };
    format!(
        "\nThe bridge is listening on port {port}; Kafka bootstrap: {brokers}\n\
         Its development spool: {spool} (apart from the ./spool of a real serve)\n\
         Send a signed callback:\n\n{signed}  -H 'content-type: application/json' \\\n  -d '{body}'\n\n\
         Its event is printed below. From another shell, with the bridge's own replay:\n\n  \
         cargo run -- replay --brokers {brokers} --topic {topic} --follow\n\n\
         or with kcat:\n\n  kcat -b {brokers} -C -t {topic} -f '%k %s\\n'\n",
        body = r#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"jared","To_Account":"Jonh","MsgSeq":48374,"MsgRandom":2837546,"MsgTime":1557481126,"MsgKey":"48374_2837546_1557481126","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"red packet 红包 🧧"}}]}"#,
        topic = settings.kafka.topic,
        spool = settings.spool_dir.display(),
    )
}

/// Prints every event that lands on the bridge's topics, so `--dev` shows the flow.
pub fn spawn_tail(settings: &Settings) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set(
            "bootstrap.servers",
            settings.kafka.brokers.as_deref().unwrap_or(""),
        )
        .set("group.id", "tim-kafka-bridge-dev-tail")
        .set("enable.auto.commit", "false")
        .create()
        .context("cannot create the dev consumer")?;
    let mut assignment = TopicPartitionList::new();
    for topic in Routes::new(&KafkaConfig::try_from(settings)?).topics() {
        for partition in 0..settings.kafka.partitions {
            assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
        }
    }
    consumer.assign(&assignment)?;
    Ok(tokio::spawn(async move {
        loop {
            match consumer.recv().await {
                Ok(m) => println!(
                    "event on {}[{}] offset {} key {}:\n{}\n",
                    m.topic(),
                    m.partition(),
                    m.offset(),
                    m.key().map(String::from_utf8_lossy).unwrap_or_default(),
                    m.payload().map(String::from_utf8_lossy).unwrap_or_default(),
                ),
                Err(error) => {
                    tracing::debug!(error = %error, "The dev consumer could not read.");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }))
}
