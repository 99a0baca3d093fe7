//! Consume the bridge's topic as a consumer group and decode each event.
//!
//!   cargo run --example consume -- 127.0.0.1:9092 tim.c2c.messages my-service
//!
//! Commits after handling, so a restart resumes where it stopped; drops duplicates
//! by the event's `id` within the run (a real service keeps the ids it has seen,
//! or makes its writes idempotent by id).

use std::collections::HashSet;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::ClientConfig;
use tim_event::{decode, Data};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "tim.c2c.messages".into());
    let group = args.next().unwrap_or_else(|| "tim-example".into());

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[&topic])?;

    let mut seen = HashSet::new();
    loop {
        let message = consumer.recv().await?;
        let Some(payload) = message.payload() else {
            continue;
        };
        let event = decode(payload)?;
        if seen.insert(event.id.clone()) {
            match &event.data {
                // Old clients send no MsgKey: such a message has no subject.
                Data::Sent(m) => match event.subject.as_deref() {
                    Some(key) => println!("{} sent {key} to {}: {:?}", m.from, m.to, m.body),
                    None => println!("{} sent to {}: {:?}", m.from, m.to, m.body),
                },
                Data::Withdrawn(m) => println!("{} recalled {}", m.from, m.msg_key),
                Data::Modified(m) => println!(
                    "{} edited {}",
                    m.operator.as_deref().unwrap_or(&m.from),
                    event.subject.as_deref().unwrap_or("?")
                ),
                other => println!("{}: {other:?}", event.event_type),
            }
        }
        consumer.commit_message(&message, CommitMode::Async)?;
    }
}
