//! Enforced ACLs (`authorizer: acl`): SASL/PLAIN users of the broker
//! binary held to the ACLs an administrator set with confluent-kafka's
//! AdminClient; librdkafka clients against the embedded broker, where a
//! PLAINTEXT client is `User:ANONYMOUS` and the application adds the ACLs
//! through the embedding API; and the embedding API's producers and
//! consumers acting as a principal.

mod broker_process;
mod embedded_broker;

use actorlog::actors::config::AuthorizerKind;
use actorlog::actors::security::authorizer::acl;
use actorlog::actors::security::{Operation, ResourceType};
use actorlog::actors::store::acls::{code, AclBinding};
use actorlog::{Broker, BrokerConfig, Principal, ResponseError};
use broker_process::{free_port, run, source, BrokerProcess};
use embedded_broker::{config, start};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use std::process::Command;
use std::time::Duration;

const ANONYMOUS: &str = "User:ANONYMOUS";
const TIMEOUT: Duration = Duration::from_secs(10);

fn allow_topic(principal: &str, operation: Operation, topic: &str) -> AclBinding {
    acl(
        ResourceType::Topic,
        topic,
        code::LITERAL,
        principal,
        operation,
        code::ALLOW,
    )
}

/// An embedded broker enforcing ACLs, with `edit` applied to its config.
async fn secured(edit: impl FnOnce(&mut BrokerConfig)) -> (Broker, String) {
    start(|c| {
        c.authorizer = AuthorizerKind::Acl;
        edit(c);
    })
    .await
}

/// Sends one record with librdkafka; the error code if it was refused.
async fn send(bootstrap: &str, topic: &str, value: &str) -> Result<(), RDKafkaErrorCode> {
    send_with(config(bootstrap), topic, value).await
}

/// As [`send`], with the client configured by `client`.
async fn send_with(
    mut client: ClientConfig,
    topic: &str,
    value: &str,
) -> Result<(), RDKafkaErrorCode> {
    let producer: FutureProducer = client
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer");
    let record = FutureRecord::<(), _>::to(topic).payload(value).partition(0);
    match producer.send(record, TIMEOUT).await {
        Ok(_) => Ok(()),
        Err((KafkaError::MessageProduction(code), _)) => Err(code),
        Err((other, _)) => panic!("unexpected producer error {other}"),
    }
}

/// How many records partition 0 of `topic` holds, read in-process.
async fn stored(broker: &Broker, topic: &str) -> usize {
    broker.read(topic, 0, 0).await.expect("read").len()
}

/// A librdkafka client logging in as `user` over SASL_PLAINTEXT (PLAIN).
fn sasl(bootstrap: &str, user: &str) -> ClientConfig {
    let mut client = config(bootstrap);
    client
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", user)
        .set("sasl.password", format!("{user}-secret"));
    client
}

/// Commits offset 1 of `topic` partition 0 for `group`, without joining it.
fn commit(mut client: ClientConfig, group: &str, topic: &str) -> Result<(), KafkaError> {
    let consumer: BaseConsumer = client
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(topic, 0, Offset::Offset(1))
        .expect("offset");
    consumer.commit(&offsets, CommitMode::Sync)
}

/// The topics a Metadata request for all topics lists to `client`.
fn listed_topics(client: ClientConfig) -> Vec<String> {
    let consumer: BaseConsumer = client.create().expect("client");
    let metadata = consumer.fetch_metadata(None, TIMEOUT).expect("metadata");
    let mut names: Vec<String> = metadata
        .topics()
        .iter()
        .map(|t| t.name().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn sasl_users_are_held_to_the_acls_an_administrator_set() {
    let (plaintext, sasl_port) = (free_port(), free_port());
    let broker = BrokerProcess::start_with_listeners(
        &format!(
            "listeners: \"PLAINTEXT://127.0.0.1:{plaintext},SASL_PLAINTEXT://127.0.0.1:{sasl_port}\"\n\
             sasl_enabled_mechanisms: [PLAIN]\n\
             sasl_plain_users: {{alice: alice-secret, bob: bob-secret, admin: admin-secret}}\n\
             authorizer: acl\n\
             super_users: [\"User:admin\"]\n"
        ),
        plaintext,
    );
    let bootstrap = format!("127.0.0.1:{sasl_port}");
    let script = source("tests/scripts/confluent_acls.py");
    let (ok, stdout, stderr) = run(
        Command::new("python3")
            .arg(&script)
            .args(["--bootstrap", &bootstrap]),
        "",
    );
    assert!(ok, "the administrator's ACLs: {stdout}\n{stderr}");

    assert_eq!(
        send_with(sasl(&bootstrap, "alice"), "orders", "a").await,
        Ok(())
    );
    assert_eq!(
        send_with(sasl(&bootstrap, "bob"), "orders", "b").await,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    assert_eq!(
        send(&broker.bootstrap(), "orders", "anonymous").await,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed),
        "a PLAINTEXT client is User:ANONYMOUS, without ACLs"
    );
    let admin = sasl(&bootstrap, "admin");
    let (low, high) = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = admin.create().expect("client");
        consumer.fetch_watermarks("orders", 0, TIMEOUT)
    })
    .await
    .expect("watermarks")
    .expect("watermarks");
    assert_eq!((low, high), (0, 1), "only alice's record was appended");

    let (bob, alice) = (sasl(&bootstrap, "bob"), sasl(&bootstrap, "alice"));
    let commits = tokio::task::spawn_blocking(move || {
        (
            commit(bob, "billing", "orders"),
            commit(alice, "billing", "orders"),
        )
    })
    .await
    .expect("commits");
    match commits.0 {
        Err(KafkaError::ConsumerCommit(code)) => {
            assert_eq!(code, RDKafkaErrorCode::GroupAuthorizationFailed)
        }
        other => panic!("bob may not commit, got {other:?}"),
    }
    assert!(commits.1.is_ok(), "alice commits: {:?}", commits.1);

    let (alice, admin) = (sasl(&bootstrap, "alice"), sasl(&bootstrap, "admin"));
    let listed = tokio::task::spawn_blocking(move || (listed_topics(alice), listed_topics(admin)))
        .await
        .expect("metadata");
    assert_eq!(listed.0, ["orders"], "alice does not see `secret`");
    assert_eq!(listed.1, ["orders", "secret"], "the super user sees all");
    drop(broker);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_principal_without_write_is_refused_and_nothing_is_appended() {
    let (broker, bootstrap) = secured(|_| {}).await;
    broker.create_topic("orders", 1).await.expect("topic");
    assert_eq!(
        send(&bootstrap, "orders", "refused").await,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    assert_eq!(stored(&broker, "orders").await, 0, "nothing appended");
    // READ does not imply WRITE.
    broker
        .create_acls(&[allow_topic(ANONYMOUS, Operation::Read, "orders")])
        .await
        .expect("acl");
    assert_eq!(
        send(&bootstrap, "orders", "refused").await,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    broker
        .create_acls(&[allow_topic(ANONYMOUS, Operation::Write, "orders")])
        .await
        .expect("acl");
    assert_eq!(send(&bootstrap, "orders", "written").await, Ok(()));
    assert_eq!(stored(&broker, "orders").await, 1);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread")]
async fn commits_need_read_on_the_group() {
    let (broker, bootstrap) = secured(|_| {}).await;
    broker.create_topic("events", 1).await.expect("topic");
    broker
        .producer()
        .send("events", None, b"one")
        .await
        .expect("written by the application");
    // DESCRIBE on the group finds its coordinator, but commits need READ.
    broker
        .create_acls(&[
            allow_topic(ANONYMOUS, Operation::Read, "events"),
            acl(
                ResourceType::Group,
                "billing",
                code::LITERAL,
                ANONYMOUS,
                Operation::Describe,
                code::ALLOW,
            ),
        ])
        .await
        .expect("acl");
    let commit = move || {
        let consumer: BaseConsumer = config(&bootstrap)
            .set("group.id", "billing")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset("events", 0, Offset::Offset(1))
            .expect("offset");
        consumer.commit(&offsets, CommitMode::Sync)
    };
    let refused = tokio::task::spawn_blocking(commit.clone())
        .await
        .expect("commit");
    let code = match refused {
        Err(KafkaError::ConsumerCommit(code)) => code,
        other => panic!("the commit is refused, got {other:?}"),
    };
    assert_eq!(code, RDKafkaErrorCode::GroupAuthorizationFailed);
    broker
        .create_acls(&[acl(
            ResourceType::Group,
            "billing",
            code::LITERAL,
            ANONYMOUS,
            Operation::Read,
            code::ALLOW,
        )])
        .await
        .expect("acl");
    let committed = tokio::task::spawn_blocking(commit).await.expect("commit");
    assert!(committed.is_ok(), "{committed:?}");
    broker.shutdown().await.expect("shutdown");
}

/// The topics Metadata lists for all topics, and the error of one named.
fn metadata(bootstrap: &str, named: &str) -> (Vec<String>, Option<RDKafkaRespErr>) {
    let client: BaseConsumer = config(bootstrap).create().expect("client");
    let all = client.fetch_metadata(None, TIMEOUT).expect("metadata");
    let mut listed: Vec<String> = all.topics().iter().map(|t| t.name().to_owned()).collect();
    listed.sort();
    let one = client
        .fetch_metadata(Some(named), TIMEOUT)
        .expect("metadata");
    (listed, one.topics()[0].error())
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_hides_topics_the_principal_may_not_describe() {
    let (broker, bootstrap) = secured(|_| {}).await;
    for topic in ["visible", "hidden"] {
        broker.create_topic(topic, 1).await.expect("topic");
    }
    broker
        .create_acls(&[allow_topic(ANONYMOUS, Operation::Describe, "visible")])
        .await
        .expect("acl");
    let (listed, error) = tokio::task::spawn_blocking(move || metadata(&bootstrap, "hidden"))
        .await
        .expect("metadata");
    assert_eq!(listed, ["visible"]);
    assert_eq!(
        error,
        Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
    );
    assert!(
        broker.topics().contains(&"hidden".to_string()),
        "the topic is there, only hidden"
    );
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_super_user_may_do_everything() {
    let (broker, bootstrap) = secured(|c| c.super_users = vec![ANONYMOUS.into()]).await;
    // Auto-created by the producer's metadata request, then written.
    assert_eq!(send(&bootstrap, "anything", "ok").await, Ok(()));
    assert_eq!(stored(&broker, "anything").await, 1);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread")]
async fn deny_beats_allow() {
    let (broker, bootstrap) = secured(|_| {}).await;
    for topic in ["open", "closed"] {
        broker.create_topic(topic, 1).await.expect("topic");
    }
    broker
        .create_acls(&[
            acl(
                ResourceType::Topic,
                "*",
                code::LITERAL,
                "User:*",
                Operation::All,
                code::ALLOW,
            ),
            acl(
                ResourceType::Topic,
                "closed",
                code::LITERAL,
                ANONYMOUS,
                Operation::Write,
                code::DENY,
            ),
        ])
        .await
        .expect("acls");
    assert_eq!(send(&bootstrap, "open", "ok").await, Ok(()));
    assert_eq!(
        send(&bootstrap, "closed", "refused").await,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    assert_eq!(stored(&broker, "closed").await, 0);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread")]
async fn prefixed_acls_cover_the_names_they_start() {
    let (broker, bootstrap) = secured(|_| {}).await;
    for topic in ["orders-eu", "payments"] {
        broker.create_topic(topic, 1).await.expect("topic");
    }
    broker
        .create_acls(&[acl(
            ResourceType::Topic,
            "orders-",
            code::PREFIXED,
            ANONYMOUS,
            Operation::Write,
            code::ALLOW,
        )])
        .await
        .expect("acl");
    assert_eq!(send(&bootstrap, "orders-eu", "ok").await, Ok(()));
    assert_eq!(
        send(&bootstrap, "payments", "refused").await,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread")]
async fn allow_everyone_if_no_acl_found_opens_only_resources_without_acls() {
    let (broker, bootstrap) = secured(|c| c.allow_everyone_if_no_acl_found = true).await;
    for topic in ["free", "guarded"] {
        broker.create_topic(topic, 1).await.expect("topic");
    }
    broker
        .create_acls(&[allow_topic("User:alice", Operation::Write, "guarded")])
        .await
        .expect("acl");
    assert_eq!(send(&bootstrap, "free", "ok").await, Ok(()));
    assert_eq!(
        send(&bootstrap, "guarded", "refused").await,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_clients_acting_as_a_principal_are_checked() {
    let (broker, _) = secured(|_| {}).await;
    broker.create_topic("jobs", 1).await.expect("topic");
    let alice = || Principal::user("alice");
    let producer = broker.producer().as_principal(alice());
    let refused = producer
        .send("jobs", None, b"x")
        .await
        .expect_err("no WRITE");
    assert_eq!(
        refused.code(),
        Some(ResponseError::TopicAuthorizationFailed)
    );
    assert_eq!(stored(&broker, "jobs").await, 0);
    broker
        .create_acls(&[
            allow_topic("User:alice", Operation::Write, "jobs"),
            allow_topic("User:alice", Operation::Read, "jobs"),
        ])
        .await
        .expect("acls");
    producer
        .send("jobs", None, b"x")
        .await
        .expect("WRITE given");
    let refused = broker
        .consumer("workers")
        .as_principal(alice())
        .subscribe(["jobs"])
        .await
        .err()
        .expect("no READ on the group");
    assert_eq!(
        refused.code(),
        Some(ResponseError::GroupAuthorizationFailed)
    );
    broker
        .create_acls(&[acl(
            ResourceType::Group,
            "workers",
            code::LITERAL,
            "User:alice",
            Operation::Read,
            code::ALLOW,
        )])
        .await
        .expect("acl");
    let mut consumer = broker
        .consumer("workers")
        .as_principal(alice())
        .subscribe(["jobs"])
        .await
        .expect("READ given");
    let mut delivered = Vec::new();
    while delivered.is_empty() {
        delivered = consumer.poll().await.expect("poll");
    }
    consumer.close().await.expect("commit and leave");
    // Without a principal the application itself is not checked.
    broker
        .producer()
        .send("unguarded", None, b"x")
        .await
        .expect("the application writes");
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread")]
async fn transactions_need_write_on_their_transactional_id() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
    let (broker, bootstrap) = secured(|_| {}).await;
    broker.create_topic("ledger", 1).await.expect("topic");
    broker
        .create_acls(&[allow_topic(ANONYMOUS, Operation::Write, "ledger")])
        .await
        .expect("acl");
    // Idempotence needs no more than WRITE on some topic (Kafka 3.x).
    assert_eq!(
        send_with(
            config(&bootstrap).set("enable.idempotence", "true").clone(),
            "ledger",
            "once"
        )
        .await,
        Ok(())
    );
    let transact = {
        let bootstrap = bootstrap.clone();
        move || {
            let producer: BaseProducer = config(&bootstrap)
                .set("transactional.id", "payments-1")
                .create()
                .expect("producer");
            producer.init_transactions(TIMEOUT)?;
            producer.begin_transaction()?;
            producer
                .send(BaseRecord::<(), _>::to("ledger").payload("in a transaction"))
                .map_err(|(e, _)| e)?;
            producer.commit_transaction(TIMEOUT)
        }
    };
    let refused = tokio::task::spawn_blocking(transact.clone())
        .await
        .expect("transaction");
    let code = match refused {
        Err(KafkaError::Transaction(e)) => e.code(),
        other => panic!("the transaction is refused, got {other:?}"),
    };
    assert_eq!(code, RDKafkaErrorCode::TransactionalIdAuthorizationFailed);
    broker
        .create_acls(&[acl(
            ResourceType::TransactionalId,
            "payments-1",
            code::LITERAL,
            ANONYMOUS,
            Operation::Write,
            code::ALLOW,
        )])
        .await
        .expect("acl");
    let committed = tokio::task::spawn_blocking(transact)
        .await
        .expect("transaction");
    assert!(committed.is_ok(), "{committed:?}");
    broker.shutdown().await.expect("shutdown");
}
