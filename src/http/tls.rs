//! HTTPS on the listener: a certificate that a SIGHUP (or [`Certificates::reload`])
//! replaces for new handshakes, while open connections keep the one they began with.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::settings::Tls;

pub struct Certificates {
    files: Tls,
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl Certificates {
    pub fn load(files: &Tls) -> Result<Arc<Self>, CertificateError> {
        Ok(Arc::new(Self {
            current: RwLock::new(read(files)?),
            files: files.clone(),
        }))
    }

    /// Reads both files again; on any error the current certificate stays.
    pub fn reload(&self) -> Result<(), CertificateError> {
        let key = read(&self.files)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = key;
        Ok(())
    }

    pub fn acceptor(self: &Arc<Self>) -> TlsAcceptor {
        let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsAcceptor::from(Arc::new(config))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

/// Why a certificate and key cannot serve HTTPS; the message names the setting.
#[derive(Debug)]
pub enum CertificateError {
    /// `setting` names `tls.cert_file` or `tls.key_file`.
    Unreadable {
        setting: &'static str,
        path: PathBuf,
        reason: String,
    },
    NoCertificate(PathBuf),
    KeyMismatch(String),
}

impl fmt::Display for CertificateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertificateError::Unreadable {
                setting,
                path,
                reason,
            } => write!(f, "{setting} {}: {reason}", path.display()),
            CertificateError::NoCertificate(path) => {
                write!(f, "tls.cert_file {}: no certificate in it", path.display())
            }
            CertificateError::KeyMismatch(reason) => {
                write!(f, "tls.key_file does not belong to tls.cert_file: {reason}")
            }
        }
    }
}

impl std::error::Error for CertificateError {}

fn read(files: &Tls) -> Result<Arc<CertifiedKey>, CertificateError> {
    let unreadable = |setting, path: &PathBuf, reason: String| CertificateError::Unreadable {
        setting,
        path: path.clone(),
        reason,
    };
    let cert = &files.cert_file;
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| unreadable("tls.cert_file", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(CertificateError::NoCertificate(cert.clone()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key_file)
        .map_err(|e| unreadable("tls.key_file", &files.key_file, e.to_string()))?;
    let key = ring::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| unreadable("tls.key_file", &files.key_file, e.to_string()))?;
    let certified = CertifiedKey::new(chain, key);
    certified
        .keys_match()
        .map_err(|e| CertificateError::KeyMismatch(e.to_string()))?;
    Ok(Arc::new(certified))
}
