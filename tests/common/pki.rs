//! Test certificates for wss://: a CA made by the test and leaf certificates it signs (ECDSA
//! P-256), written as PEM files in a temporary directory of their own, removed when the [`Pki`]
//! is dropped. Peers are told to trust the CA's file (or a leaf's key), never to skip checking.
//!
//! Shared by the engine's tests (through `common`) and the tools' (with
//! `#[path = "../../tests/common/pki.rs"] mod pki;`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A CA and the directory that holds its certificate and the leaves it signs.
pub struct Pki {
    dir: PathBuf,
    ca: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

/// A leaf certificate and its private key, as PEM files.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The certificate (the leaf alone; the CA is in [`Pki::ca`]).
    pub cert: PathBuf,
    /// Its private key (PKCS#8).
    pub key: PathBuf,
}

impl Pki {
    /// A fresh CA in a fresh directory (`tag` names it, for whoever finds one left behind).
    pub fn new(tag: &str) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "c10k-pki-{tag}-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Subjects of their own: with rcgen's default name on both, OpenSSL-based peers take a
        // leaf for self-signed (its issuer is its subject) and refuse it.
        params
            .distinguished_name
            .push(DnType::CommonName, format!("c10k test CA {tag}"));
        let cert = params.self_signed(&key).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, cert.pem()).unwrap();
        Self {
            dir,
            ca,
            issuer: Issuer::new(params, key),
        }
    }

    /// The directory that holds the files (removed with the [`Pki`]).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA's certificate (PEM): the file a client is told to trust.
    pub fn ca(&self) -> &Path {
        &self.ca
    }

    /// A leaf for `names` (DNS names, or IP addresses written as such), signed by the CA and
    /// written as `stem.pem` and `stem.key`.
    pub fn leaf(&self, stem: &str, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or(stem));
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let leaf = Leaf {
            cert: self.dir.join(format!("{stem}.pem")),
            key: self.dir.join(format!("{stem}.key")),
        };
        std::fs::write(&leaf.cert, cert.pem()).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }
}

impl Leaf {
    /// The pair as the engine's TLS settings take it.
    pub fn files(&self) -> c10k::tls::CertFiles {
        c10k::tls::CertFiles {
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
