//! How this broker reaches the other brokers of its cluster: replica
//! fetches and transaction markers go to each broker's inter-broker
//! listener (`inter_broker_listener_name`, Kafka's setting of the same
//! name) with that listener's security protocol, as Kafka's replica fetcher
//! does. Over TLS the peer's certificate must be signed by `ssl_ca_file`,
//! and this broker presents its own certificate in case the peer requires
//! client certificates; over SASL it logs in as
//! `inter_broker_sasl_username` with `sasl_mechanism_inter_broker_protocol`.

use super::listeners::SecurityProtocol;
use super::sasl::Mechanism;
use super::tls;
use super::Secret;
use std::io;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A connection to another broker, plain or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

/// The SASL login this broker uses towards the others.
#[derive(Debug, Clone)]
pub struct SaslLogin {
    pub mechanism: Mechanism,
    pub username: String,
    pub password: Secret,
}

/// The security of connections to other brokers.
#[derive(Clone, Default)]
pub struct PeerSecurity {
    tls: Option<TlsConnector>,
    sasl: Option<SaslLogin>,
}

impl PeerSecurity {
    /// For `protocol`: TLS with `ca_file` as the trust root (and this
    /// broker's certificate to present), SASL with `login`. The error names
    /// what is missing or unreadable.
    pub fn new(
        protocol: SecurityProtocol,
        ca_file: Option<&Path>,
        own_certificate: Option<(&Path, &Path)>,
        login: Option<SaslLogin>,
    ) -> Result<PeerSecurity, String> {
        let tls = if protocol.tls() {
            let ca_file = ca_file.ok_or(
                "inter-broker TLS needs ssl_ca_file to verify the other brokers' certificates",
            )?;
            Some(tls::connector(ca_file, own_certificate)?)
        } else {
            None
        };
        let sasl = if protocol.sasl() {
            Some(login.ok_or(
                "an inter-broker SASL listener needs inter_broker_sasl_username and \
                 inter_broker_sasl_password",
            )?)
        } else {
            None
        };
        Ok(PeerSecurity { tls, sasl })
    }

    /// The login to authenticate with after connecting, if any.
    pub fn sasl(&self) -> Option<&SaslLogin> {
        self.sasl.as_ref()
    }

    /// Connects to `addr` (`host:port`) and, for TLS, completes the
    /// handshake, all within `timeout`.
    pub async fn connect(&self, addr: &str, timeout: Duration) -> io::Result<Box<dyn Stream>> {
        let connecting = async {
            let stream = TcpStream::connect(addr).await?;
            // Requests are single frames waiting for their answer: Nagle's
            // delay would only add latency.
            stream.set_nodelay(true)?;
            match &self.tls {
                None => Ok::<_, io::Error>(Box::new(stream) as Box<dyn Stream>),
                Some(connector) => {
                    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
                    let host = host.trim_start_matches('[').trim_end_matches(']');
                    let name = rustls::pki_types::ServerName::try_from(host.to_string())
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                    let stream = connector.connect(name, stream).await?;
                    Ok(Box::new(stream) as Box<dyn Stream>)
                }
            }
        };
        match tokio::time::timeout(timeout, connecting).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(io::Error::new(
                e.kind(),
                format!("connecting to {addr}: {e}"),
            )),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connecting to {addr}: no answer within {timeout:?}"),
            )),
        }
    }
}
