//! HTTPS on the listener: a certificate that a SIGHUP (or [`Certificates::reload`])
//! replaces for new handshakes, while open connections keep the one they began with.

use std::fmt;
use std::sync::{Arc, RwLock};

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
    pub fn load(files: &Tls) -> Result<Arc<Self>, String> {
        Ok(Arc::new(Self {
            current: RwLock::new(read(files)?),
            files: files.clone(),
        }))
    }

    /// Reads both files again; on any error the current certificate stays.
    pub fn reload(&self) -> Result<(), String> {
        let key = read(&self.files)?;
        *self.current.write().expect("the lock is never poisoned") = key;
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
            &self.current.read().expect("the lock is never poisoned"),
        ))
    }
}

fn read(files: &Tls) -> Result<Arc<CertifiedKey>, String> {
    let cert = &files.cert_file;
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls.cert_file {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "tls.cert_file {}: no certificate in it",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key_file)
        .map_err(|e| format!("tls.key_file {}: {e}", files.key_file.display()))?;
    let key = ring::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("tls.key_file {}: {e}", files.key_file.display()))?;
    let certified = CertifiedKey::new(chain, key);
    certified
        .keys_match()
        .map_err(|e| format!("tls.key_file does not belong to tls.cert_file: {e}"))?;
    Ok(Arc::new(certified))
}
