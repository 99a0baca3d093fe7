//! Tencent's `get_history` for one hour, for bench/reconcile.sh: makes an archive of
//! COUNT one-to-one messages as the page shows one (cloud.tencent.com/document/product/269/1650:
//! a header line, a message per line, `]}`), gzipped, and a second one without every
//! MISSING_EVERY-th message; serves either over HTTPS with a CA it writes beside them,
//! checking each request's UserSig as the tests' stand-in does.
//!
//! `bench-tencent-standin DIR LISTEN COUNT MISSING_EVERY HOUR_START`; then
//! `GET /serve/present` or `/serve/full` chooses which file `get_history` lists.

#[allow(dead_code)]
#[path = "../tests/api/tls_support.rs"]
mod tls_support;

use std::convert::Infallible;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use serde_json::{json, Value};
use tim_kafka_bridge::rest::usersig;

const SDK_APP_ID: u64 = 1400000000;
const ADMIN: &str = "administrator";
const KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";

struct Archive {
    path: PathBuf,
    listing: Value,
}

/// Writes the archive of messages `0..count` whose number `keep` takes, and its listing.
fn write_archive(
    path: &Path,
    url: &str,
    hour: &str,
    count: u64,
    hour_start: u64,
    keep: impl Fn(u64) -> bool,
) -> Archive {
    let file = std::fs::File::create(path).unwrap();
    let mut gz = flate2::write::GzEncoder::new(
        std::io::BufWriter::new(file),
        flate2::Compression::default(),
    );
    let mut plain = Md5::new();
    let mut plain_size = 0u64;
    let mut put = |bytes: &[u8], gz: &mut flate2::write::GzEncoder<_>| {
        plain.update(bytes);
        plain_size += bytes.len() as u64;
        gz.write_all(bytes).unwrap();
    };
    let header = format!(
        "{{\"SdkAppId\":{SDK_APP_ID},\"ChatType\":\"C2C\",\"MsgTime\":\"{hour}\",\"MsgList\":[\n"
    );
    put(header.as_bytes(), &mut gz);
    let words = [
        "hello", "see", "you", "at", "the", "station", "tomorrow", "红包", "thanks", "ok",
        "meeting", "moved", "to", "three", "o'clock", "please", "bring", "the", "slides", "🙂",
    ];
    let mut first = true;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for n in 0..count {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        if !keep(n) {
            continue;
        }
        let text: Vec<&str> = (0..4 + state % 16)
            .map(|i| words[((state >> (i * 3)) % words.len() as u64) as usize])
            .collect();
        let line = json!({
            "From_Account": format!("user{}", state % 50_000),
            "To_Account": format!("user{}", (state >> 20) % 50_000),
            "MsgTimestamp": hour_start + n * 3600 / count,
            "MsgSeq": 1_000_000 + n,
            "MsgRandom": (state >> 32) as u32,
            "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": text.join(" ")}}],
        });
        let separator: &[u8] = if first { b"" } else { b",\n" };
        first = false;
        put(separator, &mut gz);
        put(line.to_string().as_bytes(), &mut gz);
    }
    put(b"\n]}\n", &mut gz);
    gz.finish().unwrap().flush().unwrap();
    let gzipped = std::fs::read(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy();
    Archive {
        path: path.to_owned(),
        listing: json!({
            "URL": format!("{url}/files/{name}"),
            "ExpireTime": "2030-01-01 00:00:00",
            "FileSize": plain_size, "FileMD5": hex::encode(plain.finalize()),
            "GzipSize": gzipped.len(), "GzipMD5": hex::encode(Md5::digest(&gzipped)),
        }),
    }
}

fn tencent_error(code: i64, info: &str) -> Value {
    json!({ "ActionStatus": "FAIL", "ErrorCode": code, "ErrorInfo": info })
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, listen, count, missing_every, hour_start] = &args[..] else {
        panic!("bench-tencent-standin DIR LISTEN COUNT MISSING_EVERY HOUR_START");
    };
    let dir = PathBuf::from(dir);
    let count: u64 = count.parse().unwrap();
    let missing_every: u64 = missing_every.parse().unwrap();
    let hour_start: u64 = hour_start.parse().unwrap();
    let hour = tim_kafka_bridge::reconcile::Hour::starting(hour_start).beijing();
    let url = format!("https://localhost:{}", listen.rsplit(':').next().unwrap());
    let ca = tls_support::TestCa::new();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let full = write_archive(&dir.join("full.gz"), &url, &hour, count, hour_start, |_| {
        true
    });
    let present = write_archive(
        &dir.join("present.gz"),
        &url,
        &hour,
        count,
        hour_start,
        |n| n % missing_every != 0,
    );
    eprintln!(
        "full: {} bytes ({} before gzip); present: {} bytes",
        full.listing["GzipSize"], full.listing["FileSize"], present.listing["GzipSize"]
    );
    let archives = Arc::new((full, present, hour));
    let serve_full = Arc::new(AtomicBool::new(false));
    let acceptor = ca.acceptor("localhost");
    let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
    println!("ready");
    while let Ok((stream, _)) = listener.accept().await {
        let (acceptor, archives, serve_full) =
            (acceptor.clone(), archives.clone(), serve_full.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(stream).await else {
                return;
            };
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let (archives, serve_full) = (archives.clone(), serve_full.clone());
                async move {
                    let answer = answer(request, &archives, &serve_full).await;
                    Ok::<_, Infallible>(Response::new(Full::new(answer)))
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    request: Request<hyper::body::Incoming>,
    archives: &(Archive, Archive, String),
    serve_full: &AtomicBool,
) -> Bytes {
    let (full, present, hour) = archives;
    let path = request.uri().path().to_owned();
    match path.as_str() {
        "/serve/full" => {
            serve_full.store(true, Ordering::SeqCst);
            return Bytes::from("full\n");
        }
        "/serve/present" => {
            serve_full.store(false, Ordering::SeqCst);
            return Bytes::from("present\n");
        }
        _ => {}
    }
    if let Some(name) = path.strip_prefix("/files/") {
        let file = if full.path.ends_with(name) {
            &full.path
        } else {
            &present.path
        };
        return Bytes::from(tokio::fs::read(file).await.unwrap());
    }
    let query: std::collections::HashMap<String, String> =
        form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let valid = query
        .get("usersig")
        .and_then(|s| usersig::decode(s))
        .is_some_and(|sig| {
            let (time, expire) = (
                sig["TLS.time"].as_u64().unwrap(),
                sig["TLS.expire"].as_u64().unwrap(),
            );
            query.get("identifier").map(String::as_str) == Some(ADMIN)
                && sig["TLS.sig"] == usersig::signature(SDK_APP_ID, ADMIN, KEY, time, expire)
        });
    if !valid {
        return Bytes::from(tencent_error(60004, "usersig invalid").to_string());
    }
    let asked: Value = serde_json::from_slice(&body).unwrap();
    if asked["ChatType"] != "C2C" || asked["MsgTime"] != hour.as_str() {
        return Bytes::from(tencent_error(1004, "Err_File_Not_Ready").to_string());
    }
    let listed = if serve_full.load(Ordering::SeqCst) {
        &full.listing
    } else {
        &present.listing
    };
    Bytes::from(
        json!({ "ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0, "File": [listed] })
            .to_string(),
    )
}
