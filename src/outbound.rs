//! HTTP(S) clients for what the bridge posts to others (the relay's subscribers,
//! `replay --to-url`): certificates and host names verified against the webpki roots,
//! or only against a private CA when one is named; connect timeouts; answers read
//! up to a cap, so that a receiver cannot fill the memory with an endless body.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

pub type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Most of an answer's body that is read (the rest is not wanted: only the status is).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Why an HTTPS client cannot be made: its CA file, or rustls itself.
#[derive(Debug)]
pub enum ClientError {
    CaFile {
        path: std::path::PathBuf,
        problem: String,
    },
    Tls(rustls::Error),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::CaFile { path, problem } => write!(f, "{}: {problem}", path.display()),
            Self::Tls(error) => write!(f, "TLS: {error}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// A client for `http://` and `https://` URLs. `ca_file`: trust only the CAs in that
/// PEM file (a private CA) instead of the public roots.
pub fn client(
    ca_file: Option<&Path>,
    connect_timeout: Duration,
    max_idle_per_host: usize,
) -> Result<HttpsClient, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let problem = |problem: String| ClientError::CaFile {
                path: path.to_owned(),
                problem,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| problem(format!("cannot read the CA file: {e}")))?;
            if certs.is_empty() {
                return Err(problem("holds no certificate".into()));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| problem(format!("not a CA certificate: {e}")))?;
            }
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(
        rustls::crypto::ring::default_provider().into(),
    )
    .with_safe_default_protocol_versions()
    .map_err(ClientError::Tls)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(max_idle_per_host)
        .build(connector))
}

/// Reads an answer's body up to [`MAX_ANSWER_BYTES`]; false when it was longer (the
/// connection is then dropped rather than reused).
pub async fn drain_answer(body: hyper::body::Incoming) -> bool {
    Limited::new(body, MAX_ANSWER_BYTES).collect().await.is_ok()
}

/// An error and its causes, `a: b: c`: hyper's client error alone says "Connect",
/// its causes say which certificate was refused.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// `url` with any password in it replaced, for printing.
pub fn redacted_url(url: &hyper::Uri) -> String {
    let text = url.to_string();
    match url.authority().map(|a| a.as_str()) {
        Some(authority) if authority.contains('@') => {
            let (userinfo, host) = authority.rsplit_once('@').expect("checked");
            let user = userinfo.split(':').next().unwrap_or("");
            text.replacen(authority, &format!("{user}:[redacted]@{host}"), 1)
        }
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_a_url_is_redacted() {
        let url: hyper::Uri = "https://bob:hunter2@receiver.internal/events"
            .parse()
            .unwrap();
        assert_eq!(
            redacted_url(&url),
            "https://bob:[redacted]@receiver.internal/events"
        );
        let plain: hyper::Uri = "http://receiver.internal/events".parse().unwrap();
        assert_eq!(redacted_url(&plain), "http://receiver.internal/events");
    }
}
