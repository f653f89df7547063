//! Certificates made at test time for the TLS tests.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// A CA, a broker certificate for 127.0.0.1 (good for both ends of a
/// connection between brokers) and a client certificate
/// (`OU=demo, CN=client`), as PEM files in a temporary directory.
pub struct Certificates {
    dir: tempfile::TempDir,
}

impl Certificates {
    pub fn make() -> Certificates {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca, ca_key);
        let write = |name: &str, pem: String| {
            std::fs::write(dir.path().join(name), pem).expect("PEM written")
        };
        write("ca.pem", ca_cert.pem());
        let broker_key = KeyPair::generate().expect("broker key");
        let mut broker = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
            .expect("broker params");
        broker
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        broker.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let broker = broker.signed_by(&broker_key, &issuer).expect("broker cert");
        write("broker.pem", broker.pem());
        write("broker-key.pem", broker_key.serialize_pem());
        let client_key = KeyPair::generate().expect("client key");
        let mut client = CertificateParams::new(Vec::<String>::new()).expect("client params");
        client.distinguished_name = DistinguishedName::new();
        client
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "demo");
        client.distinguished_name.push(DnType::CommonName, "client");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = client.signed_by(&client_key, &issuer).expect("client cert");
        write("client.pem", client.pem());
        write("client-key.pem", client_key.serialize_pem());
        Certificates { dir }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}
