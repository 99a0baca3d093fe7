//! The per-callback work, without I/O: query parsing, the signature check, body
//! parsing, normalization and event serialization, for a small text message and a
//! large merged-forward (relay) message. `cargo bench --bench per_callback`

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{criterion_group, criterion_main, Criterion};
use tim_kafka_bridge::event::{normalize, Context};
use tim_kafka_bridge::settings::Secret;
use tim_kafka_bridge::tencent::sign::{sign_hex, verify};
use tim_kafka_bridge::tencent::{Callback, CallbackQuery};

/// The allocator the binary runs with (src/main.rs), so allocation costs what it costs there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SMALL: &str = r#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"jared","To_Account":"Jonh","MsgSeq":48374,"MsgRandom":2837546,"MsgTime":1557481126,"MsgKey":"48374_2837546_1557481126","OnlineOnlyFlag":1,"SendMsgResult":0,"ErrorInfo":"send msg succeed","UnreadMsgNum":7,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"红包 red packet 🧧"}}],"CloudCustomData":"your cloud custom data"}"#;

fn large_relay() -> String {
    let nested: Vec<String> = (0..50)
        .map(|i| format!(r#"{{"From_Account":"user{i}","MsgTimeStamp":1557481126,"MsgBody":[{{"MsgType":"TIMTextElem","MsgContent":{{"Text":"第 {i} 条消息 with some English text and emoji 😀🎉"}}}}]}}"#))
        .collect();
    format!(
        r#"{{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"jared","To_Account":"Jonh","MsgSeq":48374,"MsgRandom":3998651049,"MsgTime":1557481126,"MsgKey":"48374_3998651049_1557481126","MsgBody":[{{"MsgType":"TIMRelayElem","MsgContent":{{"Title":"群聊的聊天记录","MsgNum":50,"CompatibleText":"请升级","AbstractList":["jared: 你好","Jonh: hi"],"MsgList":[{}]}}}}],"EventTime":"1670574414123"}}"#,
        nested.join(",")
    )
}

fn per_callback(c: &mut Criterion) {
    let time = "1669872112";
    let query = format!(
        "SdkAppid=1400000000&CallbackCommand=C2C.CallbackAfterSendMsg&contenttype=json&ClientIP=10.0.0.1&OptPlatform=iOS&RequestTime={time}&Sign={}",
        sign_hex("bench-token-0123456789", time)
    );
    let tokens = vec![Secret::new("bench-token-0123456789")];
    let mut settings = tim_kafka_bridge::settings::Settings::from_toml(
        "[[apps]]\nsdk_app_id = 1400000000\ntokens = [\"bench-token-0123456789\"]",
    )
    .unwrap();
    settings.kafka.brokers = Some("unused:9092".into());
    let settings = tim_kafka_bridge::settings::Config::try_from(settings)
        .unwrap()
        .admission;
    let large = large_relay();
    c.bench_function("query parsing", |b| {
        b.iter(|| CallbackQuery::parse(black_box(&query)).unwrap())
    });
    c.bench_function("signature check", |b| {
        b.iter(|| {
            verify(
                &tokens,
                Some(black_box(&sign_hex("bench-token-0123456789", time))),
                Some(time),
                1669872112,
                60,
            )
        })
    });
    for (name, body) in [("small text", SMALL), ("large relay", large.as_str())] {
        c.bench_function(&format!("body parsing, {name}"), |b| {
            b.iter(|| {
                Callback::parse(
                    Some("C2C.CallbackAfterSendMsg"),
                    black_box(body.as_bytes()),
                    false,
                )
                .unwrap()
            })
        });
        c.bench_function(&format!("normalization and serialization, {name}"), |b| {
            b.iter_batched(
                || {
                    Callback::parse(Some("C2C.CallbackAfterSendMsg"), body.as_bytes(), false)
                        .unwrap()
                },
                |callback| normalize(&context(), callback, body.as_bytes()).unwrap(),
                criterion::BatchSize::SmallInput,
            )
        });
        // Exactly what the server runs between reading the body and queueing events.
        c.bench_function(&format!("all of it, {name}"), |b| {
            b.iter(|| {
                tim_kafka_bridge::http::admit(
                    &settings,
                    CallbackQuery::parse(&query),
                    black_box(body.as_bytes()),
                    1669872112,
                    SystemTime::now(),
                )
                .unwrap()
            })
        });
    }
}

/// What tracing adds to a callback it does not sample (99 in 100 at 1 %): the trace
/// id and the sampler's decision, the record's span id, and its `traceparent` header.
fn unsampled_trace(c: &mut Criterion) {
    use rdkafka::message::Header;
    use tim_kafka_bridge::delivery::trace::TraceContext;
    let sampler = tim_kafka_bridge::settings::Sampler {
        parent_based: true,
        ratio: 0.01,
    };
    let headers =
        || tim_kafka_bridge::kafka::record_headers("C2C.CallbackAfterSendMsg", 1400000000);
    c.bench_function("record headers, tracing off", |b| {
        b.iter(|| black_box(headers()))
    });
    c.bench_function("record headers, tracing on and not sampled", |b| {
        b.iter(|| {
            let server = TraceContext::root(|id| sampler.sampled(None, id));
            let record = server.child();
            let traceparent = record.traceparent_bytes();
            black_box(headers().insert(Header {
                key: "traceparent",
                value: Some(&traceparent[..]),
            }))
        })
    });
}

fn context() -> Context<'static> {
    Context {
        sdk_app_id: 1400000000,
        command: "C2C.CallbackAfterSendMsg",
        client_ip: Some("10.0.0.1"),
        platform: Some("iOS"),
        received_at: SystemTime::now(),
        origin: None,
    }
}

criterion_group!(benches, per_callback, unsampled_trace);
criterion_main!(benches);
