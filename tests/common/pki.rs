//! A test CA and certificates it signs (ECDSA P-256, made with rcgen), as PEM files in a
//! directory of their own that goes away with the value.
//!
//! Included with `#[path = ".../tests/common/pki.rs"] mod pki;` by the tests that run TLS.
#![allow(dead_code)]

use std::path::PathBuf;

use c10k::tls::CertFiles;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// A CA and certificates it signed, as PEM files in a directory of their own.
pub struct Pki {
    pub dir: PathBuf,
    /// The CA certificate, PEM.
    pub ca: PathBuf,
}

impl Pki {
    /// A new CA, with `tag` in its directory's name.
    pub fn new(tag: &str) -> (Self, Issuer<'static, KeyPair>) {
        let dir = std::env::temp_dir().join(format!("c10k-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, cert.pem()).unwrap();
        (Self { dir, ca }, Issuer::new(params, key))
    }

    /// A leaf certificate (ECDSA P-256) for `names`, signed by the CA, written as `stem`.
    pub fn leaf(&self, issuer: &Issuer<'static, KeyPair>, stem: &str, names: &[&str]) -> CertFiles {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = params.signed_by(&key, issuer).unwrap();
        let files = CertFiles {
            cert: self.dir.join(format!("{stem}.pem")),
            key: self.dir.join(format!("{stem}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
