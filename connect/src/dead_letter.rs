//! Dead-letter records: the original key and value of a record a task
//! could not convert, transform or write, with why in Kafka Connect's
//! `__connect.errors.*` headers.

use crate::pipeline::StageError;
use rdkafka::message::{Header, OwnedHeaders};

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
