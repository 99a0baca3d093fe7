//! A receiver that answers every POST 204, at once or after DELAY_MS, and counts
//! them; `GET /count` says how many.
//! `cargo run --release --example bench-relay-sink -- 127.0.0.1:18095 [DELAY_MS]`

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

#[tokio::main]
async fn main() {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18095".into());
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .expect("the address is free");
    let delay = std::time::Duration::from_millis(
        std::env::args()
            .nth(2)
            .and_then(|d| d.parse().ok())
            .unwrap_or(0),
    );
    let count = Arc::new(AtomicU64::new(0));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let count = Arc::clone(&count);
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let count = Arc::clone(&count);
                async move {
                    let mut response = Response::new(Full::new(Bytes::new()));
                    if req.method() == Method::GET {
                        *response.body_mut() =
                            Full::new(Bytes::from(count.load(Ordering::Relaxed).to_string()));
                    } else {
                        let _ = req.into_body().collect().await;
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        count.fetch_add(1, Ordering::Relaxed);
                        *response.status_mut() = StatusCode::NO_CONTENT;
                    }
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
