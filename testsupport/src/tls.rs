//! Test certificates: a [`Ca`] that issues server and client certificates ([`Cert`]), as PEM (for
//! files a config names) and DER (for rustls), and [`server_config`], the rustls configuration of
//! a fake TLS server. Keys are ECDSA P-256 (rcgen's default); nothing here is fit for anything but
//! tests. Every failure panics: a test cannot go on without its certificates.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A self-signed CA (key usages: certificate and CRL signing, digital signature).
pub struct Ca {
    pem: String,
    der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// A new CA with a fresh key, named `common_name`.
    pub fn new(common_name: &str) -> Ca {
        let key = KeyPair::generate().expect("generate the test CA's key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("test CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .unwrap_or_else(|e| panic!("self-sign the test CA {common_name:?}: {e}"));
        Ca {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA's certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The CA's certificate, DER (a trust anchor for rustls).
    pub fn der(&self) -> CertificateDer<'static> {
        self.der.clone()
    }

    /// A server certificate for `names` (DNS names or IP addresses, which become IP SANs), with
    /// the first name as its common name and the serverAuth extended key usage.
    pub fn server(&self, names: &[&str]) -> Cert {
        self.issue(names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate for `name` (common name and DNS SAN), with the clientAuth extended
    /// key usage.
    pub fn client(&self, name: &str) -> Cert {
        self.issue(&[name], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Cert {
        let key = KeyPair::generate().expect("generate a test certificate's key");
        let owned: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(owned)
            .unwrap_or_else(|e| panic!("test certificate for {names:?}: {e}"));
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        params.extended_key_usages = vec![usage];
        let cert = params
            .signed_by(&key, &self.issuer)
            .unwrap_or_else(|e| panic!("sign the test certificate for {names:?}: {e}"));
        Cert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
            issuer_der: self.der.clone(),
        }
    }
}

/// A certificate a [`Ca`] issued, with its private key (PKCS#8).
pub struct Cert {
    cert_pem: String,
    key_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
    issuer_der: CertificateDer<'static>,
}

impl Cert {
    /// The certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key, PKCS#8 PEM (`BEGIN PRIVATE KEY`).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The certificate, DER.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert_der.clone()
    }

    /// The private key, PKCS#8 DER.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// A private key (PKCS#8 PEM) that belongs to no certificate.
pub fn key_pem() -> String {
    KeyPair::generate()
        .expect("generate a stray test key")
        .serialize_pem()
}

/// A rustls server configuration (ring) presenting `cert` and its issuer's certificate; with
/// `client_ca`, clients must present a certificate that CA issued.
pub fn server_config(cert: &Cert, client_ca: Option<&Ca>) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions");
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.der()).expect("the test CA is a trust anchor");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("a client verifier for the test CA");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(
            vec![cert.cert_der(), cert.issuer_der.clone()],
            cert.key_der(),
        )
        .expect("the test certificate and its key match");
    Arc::new(config)
}
