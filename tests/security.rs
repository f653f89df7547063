//! Listeners with TLS and SASL, driven by real clients (confluent-kafka,
//! kafka-python, kafkajs, kcat) and by raw sockets where the test needs to
//! see the bytes: SCRAM-SHA-512 over SASL_SSL, client certificates over SSL
//! (their subject held to ACLs), PLAIN over SASL_PLAINTEXT, OAUTHBEARER with
//! unsecured tokens, and what a wrong password, a refused token, a plaintext
//! client, TLS garbage or an oversized token get. Certificates are made at
//! test time.

mod broker_process;
mod certificates;

use broker_process::{actorlog, free_port, run, run_for, source, BrokerProcess};
use bytes::{Bytes, BytesMut};
use certificates::Certificates;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, MetadataRequest, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// A broker with a PLAINTEXT, a SASL_PLAINTEXT, a SASL_SSL and an SSL
/// listener (client certificates required), PLAIN users alice and admin,
/// and SCRAM user bob added through `actorlog users add`.
struct Secured {
    broker: BrokerProcess,
    certs: Certificates,
    sasl_plaintext: u16,
    sasl_ssl: u16,
    ssl: u16,
}

const BOB_PASSWORD: &str = "bob-secret";

/// ACLs enforced, with PLAIN user admin a super user.
const ADMINISTERED: &str = "authorizer: acl\nsuper_users: [\"User:admin\"]\n";

/// OAUTHBEARER offered beside PLAIN and SCRAM.
const OAUTHBEARER: &str = "sasl_enabled_mechanisms: [PLAIN, SCRAM-SHA-512, OAUTHBEARER]\n";

impl Secured {
    fn start() -> Secured {
        Secured::start_with("")
    }

    /// Starts with more config lines.
    fn start_with(extra_yaml: &str) -> Secured {
        let secured = Secured::without_scram_users(extra_yaml);
        let (ok, _, stderr) = actorlog(
            &[
                "-b",
                &secured.broker.bootstrap(),
                "users",
                "add",
                "bob",
                "--mechanism",
                "SCRAM-SHA-512",
            ],
            &format!("{BOB_PASSWORD}\n"),
        );
        assert!(ok, "users add: {stderr}");
        secured
    }

    /// As [`Secured::start_with`], without bob (whom `actorlog users`,
    /// a PLAINTEXT client, could not add once ACLs are enforced).
    fn without_scram_users(extra_yaml: &str) -> Secured {
        let certs = Certificates::make();
        let [plain, sasl_plaintext, sasl_ssl, ssl] = [(); 4].map(|()| free_port());
        let yaml = format!(
            "listeners: \"PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl_plaintext},\
             SASL_SSL://127.0.0.1:{sasl_ssl},SSL://127.0.0.1:{ssl}\"\n\
             sasl_plain_users: {{alice: alice-secret, admin: admin-secret}}\n\
             ssl_cert_file: {}\nssl_key_file: {}\nssl_ca_file: {}\nssl_client_auth: required\n\
             group_initial_rebalance_delay_ms: 0\n{extra_yaml}",
            certs.path("broker.pem"),
            certs.path("broker-key.pem"),
            certs.path("ca.pem"),
        );
        let broker = BrokerProcess::start_with_listeners(&yaml, plain);
        Secured {
            broker,
            certs,
            sasl_plaintext,
            sasl_ssl,
            ssl,
        }
    }

    fn scram_settings(&self) -> Vec<String> {
        vec![
            "security.protocol=SASL_SSL".into(),
            "sasl.mechanisms=SCRAM-SHA-512".into(),
            "sasl.username=bob".into(),
            format!("sasl.password={BOB_PASSWORD}"),
            format!("ssl.ca.location={}", self.certs.path("ca.pem")),
        ]
    }

    fn certificate_settings(&self) -> Vec<String> {
        vec![
            "security.protocol=SSL".into(),
            format!("ssl.ca.location={}", self.certs.path("ca.pem")),
            format!("ssl.certificate.location={}", self.certs.path("client.pem")),
            format!("ssl.key.location={}", self.certs.path("client-key.pem")),
        ]
    }
}

fn address(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// Runs `tests/scripts/secure_roundtrip.py` with a client and settings.
fn roundtrip(client: &str, port: u16, topic: &str, settings: &[String]) {
    let mut command = Command::new("python3");
    command
        .arg(source("tests/scripts/secure_roundtrip.py"))
        .args([
            "--bootstrap",
            &address(port),
            "--client",
            client,
            "--topic",
            topic,
        ]);
    for setting in settings {
        command.args(["--set", setting]);
    }
    let (ok, stdout, stderr) = run(&mut command, "");
    assert!(ok, "{client} over port {port}:\n{stdout}\n{stderr}");
}

/// `kcat -L` with librdkafka settings; its success and output.
fn kcat_metadata(port: u16, settings: &[String]) -> (bool, String, String) {
    let mut command = Command::new("kcat");
    // Cargo points the library path at the build's own librdkafka, built
    // without TLS; kcat is to use the system's.
    command.env_remove("LD_LIBRARY_PATH");
    command.args(["-b", &address(port), "-L", "-m", "5"]);
    for setting in settings {
        command.args(["-X", setting]);
    }
    run(&mut command, "")
}

#[test]
fn scram_sha_512_over_sasl_ssl_produces_and_consumes_in_a_group() {
    let secured = Secured::start();
    let settings = secured.scram_settings();
    roundtrip("confluent", secured.sasl_ssl, "scram-confluent", &settings);
    roundtrip("kafka-python", secured.sasl_ssl, "scram-python", &settings);
    let (ok, listed, stderr) = actorlog(&["-b", &secured.broker.bootstrap(), "users", "list"], "");
    assert!(ok, "users list: {stderr}");
    assert_eq!(listed.trim(), "bob SCRAM-SHA-512 iterations=8192");
    // A deleted user can no longer log in.
    let bootstrap = secured.broker.bootstrap();
    let (ok, _, stderr) = actorlog(&["-b", &bootstrap, "users", "delete", "bob"], "");
    assert!(ok, "users delete: {stderr}");
    let (ok, _, stderr) = kcat_metadata(secured.sasl_ssl, &settings);
    assert!(!ok, "bob still logs in after his deletion");
    assert!(stderr.contains("Authentication failed"), "{stderr}");
    let (ok, _, stderr) = actorlog(&["-b", &bootstrap, "users", "delete", "bob"], "");
    assert!(!ok && stderr.contains("ResourceNotFound"), "{stderr}");
}

#[test]
fn a_client_certificate_over_ssl_produces_and_consumes_in_a_group() {
    let secured = Secured::start();
    roundtrip(
        "confluent",
        secured.ssl,
        "certificate-confluent",
        &secured.certificate_settings(),
    );
    roundtrip(
        "kafka-python",
        secured.ssl,
        "certificate-python",
        &secured.certificate_settings(),
    );
    // Client certificates are required on this listener.
    let without_certificate = [
        "security.protocol=SSL".to_string(),
        format!("ssl.ca.location={}", secured.certs.path("ca.pem")),
    ];
    let (ok, _, _) = kcat_metadata(secured.ssl, &without_certificate);
    assert!(!ok, "a client without a certificate got in");
}

/// Runs `tests/scripts/kafkajs_{name}.js` against a listener with the
/// security flags of `kafkajs_support.js`; its success and output.
fn kafkajs(name: &str, port: u16, flags: &[String]) -> (bool, String, String) {
    run_for(
        Command::new("node")
            .arg(source(&format!("tests/scripts/kafkajs_{name}.js")))
            .args(["--bootstrap", &address(port)])
            .args(flags),
        "",
        // Each group waits for its first rebalance, and the transactional
        // consumer reads its batch twice.
        Duration::from_secs(180),
    )
}

#[test]
fn kafkajs_over_sasl_ssl_with_scram_sha_512_produces_consumes_and_commits_transactions() {
    let secured = Secured::start();
    let flags = [
        "--ssl-ca".to_string(),
        secured.certs.path("ca.pem"),
        "--sasl".into(),
        format!("scram-sha-512:bob:{BOB_PASSWORD}"),
    ];
    let (ok, stdout, stderr) = kafkajs("secure", secured.sasl_ssl, &flags);
    assert!(ok, "kafkajs over SASL_SSL:\n{stdout}\n{stderr}");
    let wrong = ["--sasl".to_string(), "scram-sha-512:bob:not-his".into()];
    let flags = [&flags[..2], &wrong].concat();
    let (ok, stdout, stderr) = kafkajs("secure", secured.sasl_ssl, &flags);
    assert!(!ok, "a wrong password got in: {stdout}");
    assert!(
        stderr.contains("SASL SCRAM SHA512 authentication failed"),
        "{stderr}"
    );
}

/// The client certificate's subject is the principal the ACLs see: with
/// ACLs for `User:CN=client,OU=demo` only, kafkajs does everything over
/// SSL, and the same script over PLAINTEXT (`User:ANONYMOUS`) is refused.
#[test]
fn kafkajs_with_a_client_certificate_is_held_to_the_acls_of_its_subject() {
    let secured = Secured::without_scram_users(ADMINISTERED);
    secured.grant("User:CN=client,OU=demo");
    let certificate = ["ssl-ca", "ssl-cert", "ssl-key"]
        .into_iter()
        .zip(["ca.pem", "client.pem", "client-key.pem"])
        .flat_map(|(flag, file)| [format!("--{flag}"), secured.certs.path(file)])
        .collect::<Vec<_>>();
    let (ok, stdout, stderr) = kafkajs("secure", secured.ssl, &certificate);
    assert!(ok, "kafkajs with a client certificate:\n{stdout}\n{stderr}");
    let (ok, stdout, stderr) = kafkajs("secure", secured.broker_port(), &[]);
    assert!(
        !ok,
        "User:ANONYMOUS passed the certificate's ACLs: {stdout}"
    );
    assert!(stderr.contains("TOPIC_AUTHORIZATION_FAILED"), "{stderr}");
}

#[test]
fn plain_over_sasl_plaintext_and_metadata_names_the_listener_asked() {
    let secured = Secured::start();
    let settings = [
        "security.protocol=SASL_PLAINTEXT".to_string(),
        "sasl.mechanisms=PLAIN".into(),
        "sasl.username=alice".into(),
        "sasl.password=alice-secret".into(),
    ];
    roundtrip(
        "confluent",
        secured.sasl_plaintext,
        "plain-confluent",
        &settings,
    );
    roundtrip(
        "kafka-python",
        secured.sasl_plaintext,
        "plain-python",
        &settings,
    );
    let (ok, metadata, stderr) = kcat_metadata(secured.sasl_plaintext, &settings);
    assert!(ok, "{stderr}");
    let own = format!("broker 1 at 127.0.0.1:{}", secured.sasl_plaintext);
    assert!(metadata.contains(&own), "{metadata}");
    let (ok, metadata, stderr) = kcat_metadata(secured.ssl, &secured.certificate_settings());
    assert!(ok, "{stderr}");
    assert!(
        metadata.contains(&format!("broker 1 at 127.0.0.1:{}", secured.ssl)),
        "{metadata}"
    );
}

/// A request frame, length prefix included.
fn request(api_key: ApiKey, version: i16, correlation_id: i32, body: &impl Encodable) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("security-test")))
        .encode(&mut buf, api_key.request_header_version(version))
        .expect("header encodes");
    body.encode(&mut buf, version).expect("body encodes");
    let mut frame = (buf.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&buf);
    frame
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(address(port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

/// The next response frame, or `None` once the broker closed the
/// connection. A read timeout fails the test: the broker neither answered
/// nor closed.
fn response(stream: &mut TcpStream) -> Option<Bytes> {
    let mut length = [0; 4];
    match stream.read_exact(&mut length) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
        Err(e) => panic!("neither a response nor a close: {e}"),
    }
    let mut frame = vec![0; u32::from_be_bytes(length) as usize];
    stream.read_exact(&mut frame).expect("response body");
    Some(Bytes::from(frame))
}

fn decode<R: Decodable>(api_key: ApiKey, version: i16, mut frame: Bytes) -> R {
    ResponseHeader::decode(&mut frame, api_key.response_header_version(version))
        .expect("response header");
    R::decode(&mut frame, version).expect("response body")
}

/// Asserts the broker closes `stream`, whatever it sends meanwhile (a
/// TLS alert, say). A read timeout fails the test.
fn assert_closed(stream: &mut TcpStream) {
    let mut buf = [0; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("the connection was not closed: {e}"),
        }
    }
}

/// SaslHandshake v1 for `mechanism` on a fresh connection.
fn handshake(port: u16, mechanism: &'static str) -> TcpStream {
    let mut stream = connect(port);
    let body = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
    stream
        .write_all(&request(ApiKey::SaslHandshake, 1, 1, &body))
        .expect("handshake sent");
    let frame = response(&mut stream).expect("handshake answered");
    let answer: SaslHandshakeResponse = decode(ApiKey::SaslHandshake, 1, frame);
    assert_eq!(answer.error_code, 0, "handshake refused");
    stream
}

/// SaslAuthenticate v2 with a token on a connection after its handshake;
/// the answer.
fn authenticate(stream: &mut TcpStream, token: &[u8]) -> SaslAuthenticateResponse {
    let body = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token));
    stream
        .write_all(&request(ApiKey::SaslAuthenticate, 2, 2, &body))
        .expect("authenticate sent");
    let frame = response(stream).expect("an authentication response");
    decode(ApiKey::SaslAuthenticate, 2, frame)
}

#[test]
fn a_wrong_password_gets_an_error_then_a_closed_connection() {
    let secured = Secured::start();
    let mut stream = handshake(secured.sasl_plaintext, "PLAIN");
    let answer = authenticate(&mut stream, b"\0alice\0not-her-password");
    assert_eq!(
        answer.error_code,
        kafka_protocol::ResponseError::SaslAuthenticationFailed.code()
    );
    let message = answer.error_message.expect("a message").to_string();
    assert!(
        message.contains("Invalid username or password"),
        "{message}"
    );
    assert!(!message.contains("not-her-password"), "{message}");
    assert!(response(&mut stream).is_none(), "the connection stays open");
    // The right password on a new connection works.
    let mut stream = handshake(secured.sasl_plaintext, "PLAIN");
    let answer = authenticate(&mut stream, b"\0alice\0alice-secret");
    assert_eq!(answer.error_code, 0, "{:?}", answer.error_message);
    assert_eq!(
        answer.session_lifetime_ms, 0,
        "sessions last for ever by default"
    );
    stream
        .write_all(&request(
            ApiKey::Metadata,
            12,
            4,
            &MetadataRequest::default(),
        ))
        .expect("metadata sent");
    assert!(response(&mut stream).is_some(), "served once authenticated");
}

#[test]
fn an_expired_session_is_renewed_by_reauthentication_or_closed() {
    let secured = Secured::start_with("connections_max_reauth_ms: 1500\n");
    let metadata = request(ApiKey::Metadata, 12, 3, &MetadataRequest::default());
    let mut stream = handshake(secured.sasl_plaintext, "PLAIN");
    let answer = authenticate(&mut stream, b"\0alice\0alice-secret");
    assert_eq!(answer.error_code, 0, "{:?}", answer.error_message);
    assert_eq!(answer.session_lifetime_ms, 1500);
    stream.write_all(&metadata).expect("sent");
    assert!(response(&mut stream).is_some(), "served within the session");
    // Re-authentication on the same connection (KIP-368) opens a new session.
    std::thread::sleep(Duration::from_millis(2000));
    let body = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
    stream
        .write_all(&request(ApiKey::SaslHandshake, 1, 4, &body))
        .expect("handshake sent");
    let frame = response(&mut stream).expect("handshake answered");
    let handshake_answer: SaslHandshakeResponse = decode(ApiKey::SaslHandshake, 1, frame);
    assert_eq!(handshake_answer.error_code, 0);
    let answer = authenticate(&mut stream, b"\0alice\0alice-secret");
    assert_eq!(answer.error_code, 0, "{:?}", answer.error_message);
    stream.write_all(&metadata).expect("sent");
    assert!(
        response(&mut stream).is_some(),
        "served after re-authentication"
    );
    // A session left to expire ends the connection at the next request.
    std::thread::sleep(Duration::from_millis(2000));
    stream.write_all(&metadata).expect("sent");
    assert!(
        response(&mut stream).is_none(),
        "served after the session expired"
    );
    // librdkafka re-authenticates on its own while producing and consuming.
    let settings = [
        "security.protocol=SASL_PLAINTEXT".to_string(),
        "sasl.mechanisms=PLAIN".into(),
        "sasl.username=alice".into(),
        "sasl.password=alice-secret".into(),
    ];
    roundtrip("confluent", secured.sasl_plaintext, "reauth", &settings);
}

#[test]
fn plaintext_requests_and_tls_garbage_get_a_closed_connection() {
    let secured = Secured::start();
    let metadata = request(ApiKey::Metadata, 12, 1, &MetadataRequest::default());
    // ApiVersions is answered before authentication; Metadata is not.
    let mut stream = connect(secured.sasl_plaintext);
    let versions = request(ApiKey::ApiVersions, 3, 1, &ApiVersionsRequest::default());
    stream.write_all(&versions).expect("sent");
    assert!(response(&mut stream).is_some(), "ApiVersions answered");
    stream.write_all(&metadata).expect("sent");
    assert!(
        response(&mut stream).is_none(),
        "Metadata served unauthenticated"
    );
    // A plaintext client and bytes that are no TLS on the TLS listeners.
    for port in [secured.sasl_ssl, secured.ssl] {
        let mut stream = connect(port);
        stream.write_all(&versions).expect("sent");
        assert_closed(&mut stream);
        let mut stream = connect(port);
        let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
        let _ = stream.write_all(&garbage);
        assert_closed(&mut stream);
        // A truncated handshake: a TLS record header announcing more.
        let mut stream = connect(port);
        stream
            .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
            .expect("sent");
        stream
            .shutdown(std::net::Shutdown::Write)
            .expect("half close");
        assert_closed(&mut stream);
    }
    // The broker keeps serving on every listener.
    let (ok, _, stderr) = kcat_metadata(secured.sasl_ssl, &secured.scram_settings());
    assert!(ok, "SASL_SSL after the garbage: {stderr}");
    let (ok, _, stderr) = kcat_metadata(secured.ssl, &secured.certificate_settings());
    assert!(ok, "SSL after the garbage: {stderr}");
}

#[test]
fn an_oversized_sasl_token_is_refused() {
    let secured = Secured::start();
    let mut stream = handshake(secured.sasl_plaintext, "PLAIN");
    let token = Bytes::from(vec![b'a'; 1024 * 1024]);
    let body = SaslAuthenticateRequest::default().with_auth_bytes(token);
    let _ = stream.write_all(&request(ApiKey::SaslAuthenticate, 2, 2, &body));
    assert!(response(&mut stream).is_none(), "a 1 MiB token was read");
    let (ok, _, stderr) = kcat_metadata(secured.broker_port(), &[]);
    assert!(ok, "{stderr}");
}

impl Secured {
    /// As admin, lets `principal` do everything on topics, groups and
    /// transactional ids (`tests/scripts/kafkajs_grant.js`).
    fn grant(&self, principal: &str) {
        let flags = [
            "--sasl".to_string(),
            "plain:admin:admin-secret".into(),
            "--principal".into(),
            principal.into(),
        ];
        let (ok, stdout, stderr) = kafkajs("grant", self.sasl_plaintext, &flags);
        assert!(ok, "granting {principal}:\n{stdout}\n{stderr}");
    }

    fn broker_port(&self) -> u16 {
        self.broker
            .bootstrap()
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .expect("a port")
    }
}

/// `actorlog serve` with this config; its failure message.
fn serve_fails(yaml: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, yaml).expect("config written");
    let (ok, _, stderr) = actorlog(
        &[
            "serve",
            "--config",
            &config.display().to_string(),
            "--data-dir",
            &dir.path().join("data").display().to_string(),
        ],
        "",
    );
    assert!(!ok, "serve started with {yaml}");
    stderr
}

#[test]
fn an_unreadable_or_mismatched_certificate_stops_serve_naming_the_file() {
    let certs = Certificates::make();
    let port = free_port();
    let config = |cert: &str, key: &str| {
        format!(
            "listeners: \"SSL://127.0.0.1:{port}\"\nssl_cert_file: {}\nssl_key_file: {}\n",
            certs.path(cert),
            certs.path(key)
        )
    };
    let stderr = serve_fails(&config("missing.pem", "broker-key.pem"));
    assert!(stderr.contains(&certs.path("missing.pem")), "{stderr}");
    let stderr = serve_fails(&config("broker.pem", "client-key.pem"));
    assert!(stderr.contains(&certs.path("client-key.pem")), "{stderr}");
    let not_pem = PathBuf::from(certs.path("not-pem.pem"));
    std::fs::write(&not_pem, "hello").expect("written");
    let stderr = serve_fails(&config("not-pem.pem", "broker-key.pem"));
    assert!(stderr.contains(&not_pem.display().to_string()), "{stderr}");
}

/// `examples/security/make-certs.sh` makes certificates the broker serves
/// and librdkafka trusts, client certificate included.
#[test]
fn the_example_certificate_script_makes_working_certificates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ok, _, stderr) = run(
        Command::new(source("examples/security/make-certs.sh")).current_dir(dir.path()),
        "",
    );
    assert!(ok, "make-certs.sh: {stderr}");
    let path = |name: &str| dir.path().join(name).display().to_string();
    let [plain, ssl] = [(); 2].map(|()| free_port());
    let yaml = format!(
        "listeners: \"PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{ssl}\"\n\
         ssl_cert_file: {}\nssl_key_file: {}\nssl_ca_file: {}\nssl_client_auth: required\n",
        path("broker.pem"),
        path("broker-key.pem"),
        path("ca.pem"),
    );
    let _broker = BrokerProcess::start_with_listeners(&yaml, plain);
    let settings = [
        "security.protocol=SSL".to_string(),
        format!("ssl.ca.location={}", path("ca.pem")),
        format!("ssl.certificate.location={}", path("client.pem")),
        format!("ssl.key.location={}", path("client-key.pem")),
    ];
    let (ok, metadata, stderr) = kcat_metadata(ssl, &settings);
    assert!(ok, "{stderr}");
    assert!(metadata.contains(&format!("127.0.0.1:{ssl}")), "{metadata}");
}

/// librdkafka's own unsecured tokens for `principal`.
fn unsecured_jwt_settings(principal: &str) -> Vec<String> {
    vec![
        "security.protocol=SASL_PLAINTEXT".into(),
        "sasl.mechanisms=OAUTHBEARER".into(),
        "enable.sasl.oauthbearer.unsecure.jwt=true".into(),
        format!("sasl.oauthbearer.config=principal={principal}"),
    ]
}

/// Produces one record with a token of `tests/scripts/confluent_oauthbearer.py`.
fn produce_with_token(port: u16, topic: &str, token: &[&str]) -> (bool, String, String) {
    run(
        Command::new("python3")
            .arg(source("tests/scripts/confluent_oauthbearer.py"))
            .args(["--bootstrap", &address(port), "--topic", topic])
            .args(token),
        "",
    )
}

/// An unsecured JWS with these claims, in an OAUTHBEARER client message.
fn bearer_message(claims: &str) -> Vec<u8> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let token = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(claims)
    );
    format!("n,,\x01auth=Bearer {token}\x01\x01").into_bytes()
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

#[test]
fn oauthbearer_unsecured_tokens_produce_and_consume_and_bad_ones_are_refused() {
    let secured = Secured::without_scram_users(OAUTHBEARER);
    let port = secured.sasl_plaintext;
    roundtrip("confluent", port, "oauth", &unsecured_jwt_settings("alice"));
    let (ok, stdout, stderr) = produce_with_token(port, "oauth", &["--sub", "alice"]);
    assert!(ok, "a token made by the application:\n{stdout}\n{stderr}");
    let expired = produce_with_token(port, "oauth", &["--sub", "alice", "--expires-in", "-60"]);
    assert!(!expired.0, "an expired token got in: {}", expired.1);
    assert!(expired.2.contains("the token expired"), "{}", expired.2);
    let garbage = produce_with_token(port, "oauth", &["--token", "not-a-jws"]);
    assert!(!garbage.0, "a garbage token got in: {}", garbage.1);
    assert!(garbage.2.contains("three dot-separated"), "{}", garbage.2);
}

/// RFC 7628 on the wire: an accepted token's expiry bounds the session
/// (KIP-368), a refused one gets the error JSON, and the client's
/// acknowledgement then gets SASL_AUTHENTICATION_FAILED and a closed
/// connection. Without OAUTHBEARER enabled, the handshake refuses it.
#[test]
fn oauthbearer_sessions_end_with_their_token_and_refusals_follow_rfc_7628() {
    let secured = Secured::without_scram_users(OAUTHBEARER);
    let exp = unix_seconds() + 60;
    let mut stream = handshake(secured.sasl_plaintext, "OAUTHBEARER");
    let claims = format!(r#"{{"sub":"alice","exp":{exp}}}"#);
    let answer = authenticate(&mut stream, &bearer_message(&claims));
    assert_eq!(answer.error_code, 0, "{:?}", answer.error_message);
    let lifetime = answer.session_lifetime_ms;
    assert!((55_000..=60_000).contains(&lifetime), "{lifetime}");

    let mut stream = handshake(secured.sasl_plaintext, "OAUTHBEARER");
    let answer = authenticate(&mut stream, &bearer_message(r#"{"sub":"alice"}"#));
    assert_eq!(answer.error_code, 0, "the error JSON is a challenge");
    assert_eq!(&answer.auth_bytes[..], br#"{"status":"invalid_token"}"#);
    let answer = authenticate(&mut stream, b"\x01");
    assert_eq!(
        answer.error_code,
        kafka_protocol::ResponseError::SaslAuthenticationFailed.code()
    );
    let message = answer.error_message.expect("a message").to_string();
    assert!(message.contains("no `exp` claim"), "{message}");
    assert!(response(&mut stream).is_none(), "the connection stays open");

    let default = Secured::without_scram_users("");
    let mut stream = connect(default.sasl_plaintext);
    let body =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("OAUTHBEARER"));
    stream
        .write_all(&request(ApiKey::SaslHandshake, 1, 1, &body))
        .expect("handshake sent");
    let frame = response(&mut stream).expect("handshake answered");
    let answer: SaslHandshakeResponse = decode(ApiKey::SaslHandshake, 1, frame);
    assert_eq!(
        answer.error_code,
        kafka_protocol::ResponseError::UnsupportedSaslMechanism.code()
    );
}

/// A session ends with its token, and librdkafka, which makes a new token
/// at 80% of the old one's life, re-authenticates with it (KIP-368)
/// without a client error while it produces.
#[test]
fn oauthbearer_sessions_are_renewed_with_new_tokens() {
    let secured = Secured::without_scram_users(OAUTHBEARER);
    let renewing = [
        "--sub",
        "alice",
        "--expires-in",
        "20",
        "--for-seconds",
        "22",
    ];
    let (ok, stdout, stderr) = produce_with_token(secured.sasl_plaintext, "oauth", &renewing);
    assert!(ok, "producing across token renewals:\n{stdout}\n{stderr}");
    let tokens: u32 = stdout
        .rsplit_once("tokens made: ")
        .and_then(|(_, n)| n.trim().parse().ok())
        .expect("a count of tokens");
    assert!(tokens >= 2, "{stdout}");
}

/// The token's subject is the principal: with ACLs for `User:alice` only,
/// librdkafka's tokens for alice produce and consume, kafkajs's do all of
/// `kafkajs_secure.js`, and a token for bob is refused the topic.
#[test]
fn oauthbearer_principals_are_held_to_their_acls() {
    let secured = Secured::without_scram_users(&format!("{OAUTHBEARER}{ADMINISTERED}"));
    secured.grant("User:alice");
    let port = secured.sasl_plaintext;
    roundtrip(
        "confluent",
        port,
        "oauth-acl",
        &unsecured_jwt_settings("alice"),
    );
    let flags = ["--sasl".to_string(), "oauthbearer:alice".into()];
    let (ok, stdout, stderr) = kafkajs("secure", port, &flags);
    assert!(ok, "kafkajs with a token for alice:\n{stdout}\n{stderr}");
    let (ok, stdout, stderr) = produce_with_token(port, "oauth-acl", &["--sub", "bob"]);
    assert!(!ok, "bob wrote without an ACL: {stdout}");
    assert!(stderr.contains("TOPIC_AUTHORIZATION_FAILED"), "{stderr}");
}
