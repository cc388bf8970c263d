//! `serve`'s native HTTPS (SPEC §3 `serve.tls_cert` / `serve.tls_key`):
//! rustls with the ring provider, HTTP/1.1 only, and a certificate that can
//! be replaced while serving.
//!
//! The certificate and key are read at start-up (a pair that does not load
//! is a configuration error) and again on each [`ServerTls::reload`] (what
//! SIGHUP does), so a renewed certificate needs no restart. A reload that
//! fails keeps the pair in use: a half-written renewal never takes the
//! server down. Handshakes already under way keep the pair they started
//! with; the next one gets the new pair.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};

use crate::error::UsageError;

/// Where the certificate chain (PEM, leaf first) and its private key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The TLS side of the server: an acceptor whose certificate can be
/// swapped.
pub struct ServerTls {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: Arc<CurrentCert>,
    acceptor: TlsAcceptor,
}

/// The pair handed to each new handshake.
#[derive(Debug)]
struct CurrentCert(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|key| key.clone())
    }
}

impl ServerTls {
    /// Read the pair and build the acceptor. A pair that does not load is a
    /// configuration error naming the file.
    pub fn load(files: TlsFiles) -> Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = load_pair(&files, &provider).map_err(|e| {
            UsageError::new(format!("{e:#}")).with_hint(
                "serve.tls_cert (or --tls-cert) must name a PEM certificate chain, leaf first, \
                 and serve.tls_key (or --tls-key) its PEM private key",
            )
        })?;
        let current = Arc::new(CurrentCert(RwLock::new(Arc::new(key))));
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            files,
            provider,
            current,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Read the pair again and use it for the next handshakes. On error the
    /// pair in use stays.
    pub fn reload(&self) -> Result<()> {
        let key = load_pair(&self.files, &self.provider)?;
        let mut current = self
            .current
            .0
            .write()
            .map_err(|_| anyhow::anyhow!("certificate lock poisoned"))?;
        *current = Arc::new(key);
        Ok(())
    }
}

fn load_pair(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey> {
    let chain = read_chain(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        anyhow::anyhow!(
            "cannot read a PEM private key from {}: {e}",
            files.key.display()
        )
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        anyhow::anyhow!(
            "{} and {} do not make a usable pair: {e}",
            files.cert.display(),
            files.key.display()
        )
    })
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| {
            anyhow::anyhow!("cannot read PEM certificates from {}: {e}", path.display())
        })?;
    if chain.is_empty() {
        anyhow::bail!("{} holds no PEM certificate", path.display());
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> TlsFiles {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let files = TlsFiles {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }

    #[test]
    fn a_pair_loads_and_a_failed_reload_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let files = pair(dir.path(), "a");
        let tls = ServerTls::load(files.clone()).unwrap();
        let before = tls.current.0.read().unwrap().cert[0].clone();
        std::fs::write(&files.cert, "not a certificate\n").unwrap();
        let err = tls.reload().unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        assert_eq!(tls.current.0.read().unwrap().cert[0], before);
        // A new pair in place: the next handshakes get it.
        let other = pair(dir.path(), "b");
        std::fs::copy(&other.cert, &files.cert).unwrap();
        std::fs::copy(&other.key, &files.key).unwrap();
        tls.reload().unwrap();
        assert_ne!(tls.current.0.read().unwrap().cert[0], before);
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_a_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        let a = pair(dir.path(), "a");
        let b = pair(dir.path(), "b");
        let err = ServerTls::load(TlsFiles {
            cert: a.cert,
            key: b.key,
        })
        .err()
        .unwrap();
        assert!(err.to_string().contains("usable pair"), "{err}");
        assert_eq!(
            crate::error::exit_status(&err),
            crate::error::ExitStatus::Usage
        );
        let err = ServerTls::load(TlsFiles {
            cert: dir.path().join("missing.pem"),
            key: a.key,
        })
        .err()
        .unwrap();
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }
}
