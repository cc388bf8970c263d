//! The artifact's MD5, which both ends of an upload compute while the bytes
//! stream through: the client to send it, the receiver to check it.
//!
//! MD5 is most of the CPU an upload costs on either side, so this uses
//! OpenSSL's assembly implementation (libcrypto is linked anyway, for git2):
//! `cargo bench --bench md5` measured it about 35 % faster than the `md-5`
//! crate's portable code and its `asm` backend on the development machine
//! (faster than `md5sum` too). Where OpenSSL refuses MD5 (a FIPS-only
//! configuration) the `md-5` crate takes over: the same digest, slower.

use md5::Digest;
use openssl::hash::{Hasher, MessageDigest};

/// An MD5 computation fed piece by piece.
pub struct Md5Hasher(Backend);

enum Backend {
    OpenSsl(Hasher),
    /// OpenSSL failed mid-way (it never does for MD5 in practice); the
    /// failure is reported by [`Md5Hasher::finish_hex`].
    OpenSslFailed(openssl::error::ErrorStack),
    Portable(md5::Md5),
}

impl Md5Hasher {
    pub fn new() -> Self {
        match Hasher::new(MessageDigest::md5()) {
            Ok(hasher) => Self(Backend::OpenSsl(hasher)),
            Err(_) => Self(Backend::Portable(md5::Md5::new())),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            Backend::OpenSsl(hasher) => {
                if let Err(e) = hasher.update(data) {
                    self.0 = Backend::OpenSslFailed(e);
                }
            }
            Backend::OpenSslFailed(_) => {}
            Backend::Portable(hasher) => hasher.update(data),
        }
    }

    /// The digest in lower-case hex.
    pub fn finish_hex(self) -> Result<String, Md5Failed> {
        match self.0 {
            Backend::OpenSsl(mut hasher) => hasher
                .finish()
                .map(|digest| super::hex(&digest))
                .map_err(|e| Md5Failed(e.to_string())),
            Backend::OpenSslFailed(e) => Err(Md5Failed(e.to_string())),
            Backend::Portable(hasher) => Ok(super::hex(&hasher.finalize())),
        }
    }
}

impl Default for Md5Hasher {
    fn default() -> Self {
        Self::new()
    }
}

/// OpenSSL failed to compute an MD5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Md5Failed(String);

impl std::fmt::Display for Md5Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "computing the MD5 failed (OpenSSL: {})", self.0)
    }
}

impl std::error::Error for Md5Failed {}

impl From<Md5Failed> for std::io::Error {
    fn from(e: Md5Failed) -> Self {
        std::io::Error::other(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_portable_md5_whatever_the_pieces() {
        let data: Vec<u8> = (0..200_003u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let expected = super::super::hex(&md5::Md5::digest(&data));
        for piece in [1, 63, 64, 65, 4096, 100_000, data.len()] {
            let mut hasher = Md5Hasher::new();
            for chunk in data.chunks(piece) {
                hasher.update(chunk);
            }
            assert_eq!(hasher.finish_hex().unwrap(), expected, "pieces of {piece}");
        }
        assert_eq!(
            Md5Hasher::new().finish_hex().unwrap(),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }
}
