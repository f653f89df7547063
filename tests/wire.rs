//! Bad input on the wire and in the config: each malformed frame closes only
//! its own connection, the broker keeps serving everyone else, and a bad
//! config file stops `serve` with a message naming the key.

mod broker_process;
mod embedded_broker;

use broker_process::{actorlog, BrokerProcess};
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends `bytes` on a fresh connection and expects the broker to close it.
fn closes(broker: &BrokerProcess, bytes: &[u8]) {
    let mut stream = TcpStream::connect(broker.bootstrap()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream.write_all(bytes).expect("write");
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("expected the connection closed, got {n} bytes"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
}

/// A request frame: length, api key, version, correlation id, client id.
fn frame(api_key: i16, version: i16, body: &[u8]) -> Vec<u8> {
    let mut request = Vec::new();
    request.extend_from_slice(&api_key.to_be_bytes());
    request.extend_from_slice(&version.to_be_bytes());
    request.extend_from_slice(&7i32.to_be_bytes());
    request.extend_from_slice(&4i16.to_be_bytes());
    request.extend_from_slice(b"test");
    request.extend_from_slice(body);
    let mut out = (request.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&request);
    out
}

/// Metadata v1 for all topics works: the broker still serves.
fn serves(broker: &BrokerProcess) {
    let mut stream = TcpStream::connect(broker.bootstrap()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream
        .write_all(&frame(3, 1, &(-1i32).to_be_bytes()))
        .expect("write");
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).expect("a response");
    let mut response = vec![0u8; i32::from_be_bytes(length) as usize];
    stream
        .read_exact(&mut response)
        .expect("the whole response");
    assert_eq!(&response[..4], &7i32.to_be_bytes(), "correlation id echoed");
    let client: BaseConsumer = embedded_broker::config(&broker.bootstrap())
        .create()
        .expect("client");
    client
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("librdkafka gets metadata");
}

#[test]
fn malformed_frames_close_only_their_own_connection() {
    let mut broker = BrokerProcess::start();
    let bystander = TcpStream::connect(broker.bootstrap()).expect("connect");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"\x00\x00\x00\x10this is not kafka".to_vec()),
        ("absurd length", 0x7fff_ffffi32.to_be_bytes().to_vec()),
        ("negative length", (-5i32).to_be_bytes().to_vec()),
        ("unknown api key", frame(999, 0, b"")),
        ("unsupported produce version", frame(0, 2, b"")),
        ("truncated metadata", frame(3, 9, b"\x02")),
        // Produce v9 announcing four billion topics in a 20-byte frame.
        (
            "allocation bomb",
            frame(0, 9, b"\x00\x00\x01\x00\x00\x03\xe8\xf0\xff\xff\xff\x0f"),
        ),
    ];
    for (name, bytes) in cases {
        if name == "absurd length" || name == "negative length" {
            let mut stream = TcpStream::connect(broker.bootstrap()).expect("connect");
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            stream.write_all(&bytes).expect("write");
            let mut buf = [0u8; 8];
            assert!(
                matches!(stream.read(&mut buf), Ok(0) | Err(_)),
                "{name}: closed"
            );
        } else {
            closes(&broker, &bytes);
        }
        assert!(broker.is_running(), "{name}: the broker is still up");
        serves(&broker);
    }
    drop(bystander);
}

#[test]
fn api_versions_of_an_unknown_version_answers_with_the_supported_range() {
    let broker = BrokerProcess::start();
    let mut stream = TcpStream::connect(broker.bootstrap()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream.write_all(&frame(18, 99, b"")).expect("write");
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).expect("a response");
    let mut response = vec![0u8; i32::from_be_bytes(length) as usize];
    stream
        .read_exact(&mut response)
        .expect("the whole response");
    // v0 header: correlation id; v0 body: error code, then the api array.
    assert_eq!(&response[..4], &7i32.to_be_bytes());
    assert_eq!(
        i16::from_be_bytes([response[4], response[5]]),
        35,
        "UNSUPPORTED_VERSION"
    );
    let apis = i32::from_be_bytes([response[6], response[7], response[8], response[9]]);
    assert!(apis > 10, "the supported APIs are listed");
}

#[test]
fn bad_config_files_name_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (yaml, key) in [
        ("listen: 127.0.0.1:0\nnum_partiton: 3\n", "num_partiton"),
        ("num_partitions: -3\n", "num_partitions"),
        ("listen: nope\n", "listen"),
        ("segment_bytes: 10\n", "segment_bytes"),
    ] {
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, yaml).expect("config written");
        let (ok, _, stderr) = actorlog(&["serve", "--config", path.to_str().expect("utf-8")], "");
        assert!(!ok, "{yaml}: serve must fail");
        assert!(
            stderr.contains(key),
            "{yaml}: the error names {key}: {stderr}"
        );
    }
}
