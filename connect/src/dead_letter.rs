//! Dead-letter records: the original key and value of a record a task
//! could not convert, transform or write, with why in Kafka Connect's
//! `__connect.errors.*` headers.

use crate::clients::send;
use crate::pipeline::StageError;
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};

/// A sink's dead-letter topic and the producer writing to it.
pub type DeadLetters = (String, ThreadedProducer<DefaultProducerContext>);

/// A record a sink skips under `errors.tolerance: all`: logged, and sent to
/// the dead-letter topic, if there is one, with the original key and value.
/// Whether it was sent there.
pub fn skip_consumed(
    connector: &str,
    message: &BorrowedMessage<'_>,
    error: &StageError,
    dead_letters: Option<&DeadLetters>,
) -> Result<bool, String> {
    log::warn!(
        "connector {connector}: skipped {}/{}@{}: {error}",
        message.topic(),
        message.partition(),
        message.offset()
    );
    let Some((topic, producer)) = dead_letters else {
        return Ok(false);
    };
    let origin = Origin {
        topic: message.topic(),
        partition: message.partition(),
        offset: message.offset(),
    };
    let mut record =
        BaseRecord::<[u8], [u8]>::to(topic).headers(headers(connector, error, Some(origin)));
    if let Some(k) = message.key() {
        record = record.key(k);
    }
    if let Some(v) = message.payload() {
        record = record.payload(v);
    }
    send(producer, record)?;
    Ok(true)
}

/// Where a sink's failed record was read from.
pub struct Origin<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

pub fn headers(connector: &str, error: &StageError, origin: Option<Origin<'_>>) -> OwnedHeaders {
    let mut fields: Vec<(&str, String)> = Vec::new();
    if let Some(o) = origin {
        fields.push(("__connect.errors.topic", o.topic.to_string()));
        fields.push(("__connect.errors.partition", o.partition.to_string()));
        fields.push(("__connect.errors.offset", o.offset.to_string()));
    }
    fields.extend([
        ("__connect.errors.connector.name", connector.to_string()),
        ("__connect.errors.task.id", "0".to_string()),
        ("__connect.errors.stage", error.stage.name().to_string()),
        ("__connect.errors.class.name", error.class.clone()),
        ("__connect.errors.exception.message", error.message.clone()),
    ]);
    fields
        .into_iter()
        .fold(OwnedHeaders::new(), |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Stage;
    use rdkafka::message::Headers;

    #[test]
    fn the_reason_is_in_the_headers() {
        let error = StageError {
            stage: Stage::ValueConverter,
            class: "json".into(),
            message: "the data is not JSON".into(),
        };
        let origin = Origin {
            topic: "in",
            partition: 2,
            offset: 17,
        };
        let h = headers("sink-a", &error, Some(origin));
        let all: Vec<(String, String)> = h
            .iter()
            .map(|h| {
                (
                    h.key.to_string(),
                    String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                )
            })
            .collect();
        let get = |k: &str| {
            all.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("__connect.errors.topic"), Some("in"));
        assert_eq!(get("__connect.errors.offset"), Some("17"));
        assert_eq!(get("__connect.errors.stage"), Some("VALUE_CONVERTER"));
        assert_eq!(
            get("__connect.errors.exception.message"),
            Some("the data is not JSON")
        );
        assert_eq!(get("__connect.errors.connector.name"), Some("sink-a"));
    }
}
