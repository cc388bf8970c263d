//! Which certificate authorities the HTTPS clients trust.
//!
//! On-premise GitLab servers are often signed by an internal CA. The clients
//! trust, in this order of precedence for the base set:
//! - `SSL_CERT_FILE` / `SSL_CERT_DIR` when set (OpenSSL's meaning: they
//!   replace the system's bundle);
//! - else the system trust store (Debian's `ca-certificates`, read through
//!   `rustls-native-certs`);
//! - else, when neither yields a certificate, the built-in web roots;
//!
//! and in every case also the CA file GitLab Runner hands to jobs
//! (`CI_SERVER_TLS_CA_FILE`). The same [`TrustStore`] is used by every HTTPS
//! client (GitLab, Freshdesk, the release upload), so there is one way to
//! configure trust. The files are read once, on first use, and a file that
//! holds no certificate is a configuration error naming its variable.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use anyhow::Result;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use crate::error::UsageError;

/// A CA file and the variable that named it (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFile {
    pub path: PathBuf,
    pub source: &'static str,
}

/// The trust settings, resolved once (see [`crate::settings::Settings`]),
/// and the roots they load to, computed on first use and shared by clones.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    /// `SSL_CERT_FILE`: replaces the system bundle.
    pub cert_file: Option<PathBuf>,
    /// `SSL_CERT_DIR`: replaces the system bundle's directory.
    pub cert_dir: Option<PathBuf>,
    /// Added to whatever the base set is (`CI_SERVER_TLS_CA_FILE`).
    pub extra: Vec<CaFile>,
    loaded: Arc<OnceLock<std::result::Result<RootCerts, String>>>,
}

impl TrustStore {
    pub fn new(cert_file: Option<PathBuf>, cert_dir: Option<PathBuf>, extra: Vec<CaFile>) -> Self {
        Self {
            cert_file,
            cert_dir,
            extra,
            loaded: Arc::default(),
        }
    }

    /// The TLS configuration for a `ureq` agent.
    pub fn tls_config(&self) -> Result<TlsConfig> {
        let roots = self
            .loaded
            .get_or_init(|| self.load().map_err(|e| format!("{e:#}")))
            .clone()
            .map_err(|message| {
                anyhow::Error::new(UsageError::new(message).with_hint(
                    "SSL_CERT_FILE and CI_SERVER_TLS_CA_FILE must name PEM files with at least one \
                     certificate; SSL_CERT_DIR a directory of them",
                ))
            })?;
        Ok(TlsConfig::builder().root_certs(roots).build())
    }

    fn load(&self) -> Result<RootCerts> {
        let base = if self.cert_file.is_some() || self.cert_dir.is_some() {
            let found = rustls_native_certs::load_certs_from_paths(
                self.cert_file.as_deref(),
                self.cert_dir.as_deref(),
            );
            if let Some(err) = found.errors.first() {
                anyhow::bail!("cannot read SSL_CERT_FILE/SSL_CERT_DIR: {err}");
            }
            if found.certs.is_empty() {
                anyhow::bail!("SSL_CERT_FILE/SSL_CERT_DIR hold no certificate");
            }
            found.certs
        } else {
            // A partly unreadable system store still gives the rest.
            rustls_native_certs::load_native_certs().certs
        };
        let mut certs: Vec<Certificate<'static>> = base
            .into_iter()
            .map(|der| Certificate::from_der(der.as_ref()).to_owned())
            .collect();
        for file in &self.extra {
            let pem = std::fs::read(&file.path).map_err(|e| {
                anyhow::anyhow!("cannot read {} ({}): {e}", file.source, file.path.display())
            })?;
            let before = certs.len();
            for item in ureq::tls::parse_pem(&pem) {
                match item {
                    Ok(ureq::tls::PemItem::Certificate(cert)) => certs.push(cert.to_owned()),
                    Ok(_) => {}
                    Err(e) => anyhow::bail!(
                        "{} ({}) is not a PEM certificate file: {e}",
                        file.source,
                        file.path.display()
                    ),
                }
            }
            if certs.len() == before {
                anyhow::bail!(
                    "{} ({}) holds no PEM certificate",
                    file.source,
                    file.path.display()
                );
            }
        }
        Ok(if certs.is_empty() {
            RootCerts::WebPki
        } else {
            RootCerts::new_with_certs(&certs)
        })
    }
}

/// Whether a request failed in the TLS handshake: a certificate that is not
/// trusted, expired, or for another name. Retrying cannot help.
pub fn is_tls_failure(err: &ureq::Error) -> bool {
    match err {
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => true,
        ureq::Error::Io(io) => {
            io.kind() == std::io::ErrorKind::InvalidData
                && io.get_ref().is_some_and(|inner| {
                    let text = inner.to_string();
                    text.contains("peer certificate") || text.contains("HandshakeFailure")
                })
        }
        _ => false,
    }
}

/// Whether a transport error reads like a certificate the client does not
/// trust (for a hint that names the variables above).
pub fn is_untrusted_certificate(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("certificate") || lower.contains("unknownissuer")
}

/// The hint for an HTTPS server whose certificate was not trusted.
pub const UNTRUSTED_HINT: &str = "the server's certificate is not trusted: if an internal CA signed \
     it, set CI_SERVER_TLS_CA_FILE (added to the system store) or SSL_CERT_FILE (replaces it) to the \
     CA's PEM file";

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn an_extra_ca_file_is_loaded_with_the_base_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca_pem()).unwrap();
        let store = TrustStore::new(
            Some(path.clone()),
            None,
            vec![CaFile {
                path,
                source: "CI_SERVER_TLS_CA_FILE",
            }],
        );
        let config = store.tls_config().unwrap();
        match config.root_certs() {
            RootCerts::Specific(certs) => assert_eq!(certs.len(), 2),
            other => panic!("expected specific roots, got {other:?}"),
        }
    }

    #[test]
    fn a_file_without_certificates_is_a_usage_error_naming_its_variable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let store = TrustStore::new(
            None,
            None,
            vec![CaFile {
                path,
                source: "CI_SERVER_TLS_CA_FILE",
            }],
        );
        let err = store.tls_config().unwrap_err();
        assert!(err.to_string().contains("CI_SERVER_TLS_CA_FILE"), "{err}");
        assert_eq!(
            crate::error::exit_status(&err),
            crate::error::ExitStatus::Usage
        );
    }

    #[test]
    fn a_missing_ssl_cert_file_is_an_error() {
        let store = TrustStore::new(Some(PathBuf::from("/nonexistent/ca.pem")), None, Vec::new());
        let err = store.tls_config().unwrap_err();
        assert!(err.to_string().contains("SSL_CERT_FILE"), "{err}");
    }
}
