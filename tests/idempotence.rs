//! Idempotent producers on a raw connection: a retried batch gets its
//! original offset back without a second write, a gap in sequence numbers
//! is refused, and an older epoch is fenced. Then a transaction left open
//! past its timeout is aborted by the broker.

mod broker_process;
mod embedded_broker;

use actorlog_actors::partition::batch;
use broker_process::BrokerProcess;
use bytes::{Bytes, BytesMut};
use embedded_broker::{config, create_topic, read_all};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{Compression, Record};
use kafka_protocol::ResponseError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const PRODUCE_VERSION: i16 = 9;
const INIT_VERSION: i16 = 4;

struct Connection {
    stream: TcpStream,
    correlation: i32,
}

impl Connection {
    fn open(bootstrap: &str) -> Connection {
        let stream = TcpStream::connect(bootstrap).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Connection {
            stream,
            correlation: 0,
        }
    }

    fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Resp {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("raw")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, key.request_header_version(version))
            .expect("header");
        request.encode(&mut body, version).expect("body");
        self.stream
            .write_all(&(body.len() as i32).to_be_bytes())
            .expect("write");
        self.stream.write_all(&body).expect("write");
        let mut length = [0u8; 4];
        self.stream.read_exact(&mut length).expect("a response");
        let mut response = vec![0u8; i32::from_be_bytes(length) as usize];
        self.stream
            .read_exact(&mut response)
            .expect("the whole response");
        let mut response = Bytes::from(response);
        let header = ResponseHeader::decode(&mut response, key.response_header_version(version))
            .expect("header");
        assert_eq!(header.correlation_id, self.correlation);
        Resp::decode(&mut response, version).expect("response")
    }

    /// Produces one idempotent batch; (error code, base offset).
    fn produce(
        &mut self,
        producer_id: i64,
        epoch: i16,
        sequence: i32,
        values: &[&str],
    ) -> (i16, i64) {
        let records: Vec<Record> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Record {
                producer_id,
                producer_epoch: epoch,
                sequence: sequence + i as i32,
                ..batch::record(
                    i as i64,
                    0,
                    None,
                    Some(Bytes::copy_from_slice(v.as_bytes())),
                )
            })
            .collect();
        let batch = batch::encode_records(&records, Compression::None).expect("batch");
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("idempotent")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch))])]);
        let response: ProduceResponse = self.call(ApiKey::Produce, PRODUCE_VERSION, &request);
        let partition = &response.responses[0].partition_responses[0];
        (partition.error_code, partition.base_offset)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retried_batches_are_written_once() {
    let broker = BrokerProcess::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "idempotent", 1, &[]).await;
    let mut connection = Connection::open(&bootstrap);
    let init: InitProducerIdResponse = connection.call(
        ApiKey::InitProducerId,
        INIT_VERSION,
        &InitProducerIdRequest::default().with_transaction_timeout_ms(60_000),
    );
    assert_eq!(init.error_code, 0);
    let (id, epoch) = (init.producer_id.0, init.producer_epoch);
    assert!(id >= 0);

    assert_eq!(connection.produce(id, epoch, 0, &["a", "b"]), (0, 0));
    assert_eq!(connection.produce(id, epoch, 2, &["c"]), (0, 2));
    // The same batches again, as a client retrying after a lost response.
    assert_eq!(connection.produce(id, epoch, 0, &["a", "b"]), (0, 0));
    assert_eq!(connection.produce(id, epoch, 2, &["c"]), (0, 2));
    let (error, _) = connection.produce(id, epoch, 9, &["gap"]);
    assert_eq!(error, ResponseError::OutOfOrderSequenceNumber.code());
    assert_eq!(connection.produce(id, epoch, 3, &["d"]), (0, 3));
    // A newer epoch (KIP-360 bump) fences the old one.
    assert_eq!(connection.produce(id, epoch + 1, 0, &["e"]), (0, 4));
    let (error, _) = connection.produce(id, epoch, 4, &["stale"]);
    assert_eq!(error, ResponseError::InvalidProducerEpoch.code());

    let values = read_all(
        &bootstrap,
        "idempotent",
        1,
        "read_uncommitted",
        Duration::from_secs(2),
    );
    assert_eq!(values, ["a", "b", "c", "d", "e"], "each batch exactly once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_past_its_timeout_is_aborted() {
    let broker = BrokerProcess::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "stuck", 1, &[]).await;
    let stuck: BaseProducer = config(&bootstrap)
        .set("transactional.id", "stuck-writer")
        .set("transaction.timeout.ms", "1000")
        .create()
        .expect("producer");
    stuck
        .init_transactions(Duration::from_secs(20))
        .expect("init");
    stuck.begin_transaction().expect("begin");
    stuck
        .send(
            BaseRecord::<(), _>::to("stuck")
                .payload("never committed")
                .partition(0),
        )
        .expect("queued");
    stuck.flush(Duration::from_secs(10)).expect("flush");
    // The producer goes quiet; the broker aborts after the timeout, which
    // lets read_committed consumers past the open transaction.
    std::thread::sleep(Duration::from_secs(3));
    let later: BaseProducer = config(&bootstrap).create().expect("producer");
    later
        .send(
            BaseRecord::<(), _>::to("stuck")
                .payload("after")
                .partition(0),
        )
        .expect("queued");
    later.flush(Duration::from_secs(10)).expect("flush");
    let committed = read_all(
        &bootstrap,
        "stuck",
        1,
        "read_committed",
        Duration::from_secs(2),
    );
    assert_eq!(committed, ["after"]);
    assert!(
        stuck.commit_transaction(Duration::from_secs(10)).is_err(),
        "the stuck producer is fenced"
    );
}
