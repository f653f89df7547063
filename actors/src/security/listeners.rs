//! Listeners as Kafka writes them: `listeners`, `advertised_listeners` and
//! `listener_security_protocol_map`, resolved into one [`Listener`] per
//! endpoint the broker binds.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;

/// How a listener protects and authenticates its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    /// The connection is TLS.
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Clients must authenticate with SASL before anything else.
    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    /// Kafka's name of the protocol.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

impl FromStr for SecurityProtocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "PLAINTEXT" => Ok(SecurityProtocol::Plaintext),
            "SSL" => Ok(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Ok(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Ok(SecurityProtocol::SaslSsl),
            other => Err(format!(
                "unknown security protocol `{other}` (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)"
            )),
        }
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One endpoint the broker listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// The listener's name (`PLAINTEXT`, or a custom one such as `CLIENT`);
    /// Metadata answers with the endpoints of the listener a request came
    /// in on, found by this name.
    pub name: String,
    pub protocol: SecurityProtocol,
    /// Where it binds.
    pub bind: SocketAddr,
    /// Where clients are told to connect.
    pub host: String,
    pub port: i32,
}

/// `NAME://host:port` split into its parts.
fn parse_endpoint(entry: &str) -> Result<(String, String, u16), String> {
    let (name, address) = entry
        .split_once("://")
        .ok_or_else(|| format!("`{entry}` is not NAME://host:port"))?;
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("`{entry}` has no port"))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("`{entry}` has no valid port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if name.is_empty() {
        return Err(format!("`{entry}` has no listener name"));
    }
    Ok((name.to_owned(), host.to_owned(), port))
}

/// The entries of a comma-separated list, without blanks.
fn entries(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// `NAME:PROTOCOL,...`.
fn parse_protocol_map(map: &str) -> Result<BTreeMap<String, SecurityProtocol>, String> {
    entries(map)
        .map(|entry| {
            let (name, protocol) = entry
                .split_once(':')
                .ok_or_else(|| format!("`{entry}` is not NAME:PROTOCOL"))?;
            Ok((name.to_owned(), protocol.parse()?))
        })
        .collect()
}

/// Resolves `listeners` (with the protocol map and `advertised_listeners`)
/// into listeners; a listener without an advertised entry advertises its
/// bind address, which then must not be a wildcard. Errors name the entry.
pub fn parse(
    listeners: &str,
    advertised: Option<&str>,
    protocol_map: Option<&str>,
) -> Result<Vec<Listener>, String> {
    let map = protocol_map.map(parse_protocol_map).transpose()?;
    let mut advertised_by_name = BTreeMap::new();
    for entry in entries(advertised.unwrap_or("")) {
        let (name, host, port) = parse_endpoint(entry)?;
        advertised_by_name.insert(name, (host, port));
    }
    let mut resolved: Vec<Listener> = Vec::new();
    for entry in entries(listeners) {
        let (name, host, port) = parse_endpoint(entry)?;
        if resolved.iter().any(|l| l.name == name) {
            return Err(format!("listener `{name}` is named twice"));
        }
        let protocol = match &map {
            Some(map) => *map
                .get(&name)
                .ok_or_else(|| format!("listener `{name}` is not in the protocol map"))?,
            None => name.parse()?,
        };
        let bind = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| format!("`{entry}`: {e}"))?
            .next()
            .ok_or_else(|| format!("`{entry}`: no address"))?;
        let (host, port) = match advertised_by_name.remove(&name) {
            Some(advertised) => advertised,
            None if bind.ip().is_unspecified() => {
                return Err(format!(
                    "listener `{name}` binds a wildcard address and needs an advertised_listeners entry"
                ))
            }
            None => (bind.ip().to_string(), port),
        };
        resolved.push(Listener {
            name,
            protocol,
            bind,
            host,
            port: i32::from(port),
        });
    }
    if let Some(name) = advertised_by_name.keys().next() {
        return Err(format!(
            "advertised listener `{name}` is not in `listeners`"
        ));
    }
    if resolved.is_empty() {
        return Err("no listener given".to_owned());
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_from_names_or_the_map() {
        let l = parse(
            "PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9094",
            None,
            None,
        )
        .unwrap();
        assert_eq!(l[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(l[1].protocol, SecurityProtocol::SaslSsl);
        assert_eq!((l[1].host.as_str(), l[1].port), ("127.0.0.1", 9094));
        let l = parse(
            "CLIENT://0.0.0.0:9093",
            Some("CLIENT://kafka.example:443"),
            Some("CLIENT:SASL_SSL"),
        )
        .unwrap();
        assert_eq!(l[0].name, "CLIENT");
        assert_eq!(l[0].protocol, SecurityProtocol::SaslSsl);
        assert_eq!((l[0].host.as_str(), l[0].port), ("kafka.example", 443));
    }

    #[test]
    fn errors_name_the_entry() {
        let err = |l, a, m| parse(l, a, m).unwrap_err();
        assert!(err("CLIENT://127.0.0.1:1", None, None).contains("CLIENT"));
        assert!(err("PLAINTEXT://127.0.0.1", None, None).contains("port"));
        assert!(err("PLAINTEXT://0.0.0.0:1", None, None).contains("advertised"));
        assert!(err("PLAINTEXT://127.0.0.1:1", Some("SSL://h:1"), None).contains("SSL"));
        assert!(err("A://127.0.0.1:1", None, Some("A:TLS")).contains("TLS"));
    }
}
