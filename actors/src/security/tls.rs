//! TLS for SSL and SASL_SSL listeners, with rustls on the ring provider:
//! the server config from PEM files, the handshake, and the principal of a
//! client certificate; and the client config a broker uses towards the
//! other brokers of its cluster.

use super::Principal;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

/// A TLS handshake not finished this long after the connection opened
/// closes it, so a client that opens sockets and sends nothing holds none.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether TLS clients present a certificate (Kafka's `ssl.client.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// Not asked for.
    None,
    /// Asked for; a client without one is anonymous.
    Requested,
    /// A client without a valid certificate is refused.
    Required,
}

/// ring, not rustls's default aws-lc-rs: no C toolchain or cmake in the
/// build. rustls 0.23.48 deprecates it for lacking post-quantum key
/// exchange, which Kafka clients (librdkafka on OpenSSL 3) do not negotiate
/// today either.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the TLS acceptor of the config's files. The error names the
/// file that could not be read or used.
pub fn acceptor(
    cert_file: &Path,
    key_file: &Path,
    ca_file: Option<&Path>,
    client_auth: ClientAuth,
) -> Result<TlsAcceptor, String> {
    let provider = provider();
    let (certs, key) = key_pair(cert_file, key_file)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match (client_auth, ca_file) {
        (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
        (auth, Some(ca_file)) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca_file)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("ssl_ca_file {}: {e}", ca_file.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match auth {
                ClientAuth::Requested => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            let verifier = verifier
                .build()
                .map_err(|e| format!("ssl_ca_file {}: {e}", ca_file.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "ssl_key_file {} does not fit ssl_cert_file {}: {e}",
            key_file.display(),
            cert_file.display()
        )
    })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Builds the TLS connector a broker uses towards other brokers (and
/// controllers): servers must present a certificate signed by `ca_file`,
/// and `own_certificate` (certificate and key files) is shown to servers
/// that ask for one.
pub fn connector(
    ca_file: &Path,
    own_certificate: Option<(&Path, &Path)>,
) -> Result<TlsConnector, String> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca_file)? {
        roots
            .add(cert)
            .map_err(|e| format!("ssl_ca_file {}: {e}", ca_file.display()))?;
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots);
    let config = match own_certificate {
        None => builder.with_no_client_auth(),
        Some((cert_file, key_file)) => {
            let (certs, key) = key_pair(cert_file, key_file)?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                format!(
                    "ssl_key_file {} does not fit ssl_cert_file {}: {e}",
                    key_file.display(),
                    cert_file.display()
                )
            })?
        }
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// A certificate chain and its private key, from PEM files.
fn key_pair(
    cert_file: &Path,
    key_file: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let certs = certificates(cert_file)?;
    let key_pem = read(key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!(
            "ssl_key_file {}: no PEM private key: {e}",
            key_file.display()
        )
    })?;
    Ok((certs, key))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The certificates of a PEM file; none is an error.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: bad PEM certificate: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

/// The TLS handshake of an accepted connection, and the principal of the
/// client's certificate if it presented one.
pub async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
) -> Result<(TlsStream<TcpStream>, Option<Principal>), String> {
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
        .await
        .map_err(|_| "no TLS handshake in time".to_owned())?
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    let principal = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| certificate_principal(cert))
        .transpose()?;
    Ok((stream, principal))
}

/// `User:` and the certificate's subject as Java's RFC 2253 form writes
/// it, most specific first (`User:CN=alice,OU=eng,O=example`): Kafka's
/// default `ssl.principal.mapping.rules`.
fn certificate_principal(der: &[u8]) -> Result<Principal, String> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| format!("unreadable client certificate: {e}"))?;
    let registry = x509_parser::objects::oid_registry();
    let rdns: Vec<String> = cert
        .subject()
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attribute| {
                    let oid = attribute.attr_type();
                    let key = x509_parser::objects::oid2abbrev(oid, registry)
                        .map_or_else(|_| oid.to_id_string(), str::to_owned);
                    let value = attribute
                        .as_str()
                        .map_or_else(|_| format!("#{}", hex(attribute.attr_value().data)), escape);
                    format!("{key}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    Ok(Principal::user(
        rdns.into_iter().rev().collect::<Vec<_>>().join(","),
    ))
}

/// RFC 2253 escaping of an attribute value.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let leading = i == 0 && (c == ' ' || c == '#');
        let trailing = i + 1 == value.chars().count() && c == ' ';
        if leading || trailing || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

    #[test]
    fn a_certificate_principal_is_its_subject_most_specific_first() {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        // Not rcgen's default, which starts with a common name.
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CountryName, "NL");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Example, Inc");
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "eng");
        params.distinguished_name.push(DnType::CommonName, "alice");
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            certificate_principal(cert.der()).unwrap(),
            Principal::user("CN=alice,OU=eng,O=Example\\, Inc,C=NL")
        );
    }

    #[test]
    fn garbage_is_no_certificate() {
        assert!(certificate_principal(b"not a certificate").is_err());
    }
}
