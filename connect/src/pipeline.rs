//! A record's way between Kafka bytes and a connector: converters and
//! transforms in Kafka Connect's order, with each failure tagged by the
//! stage it happened in (for the task's status and the dead-letter
//! headers).

use crate::config::ConnectorConfig;
use crate::converter::Converter;
use crate::data::{ConnectRecord, Data};
use crate::transform::Transform;

/// Kafka Connect's names of the stages, as `__connect.errors.stage` has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    KeyConverter,
    ValueConverter,
    Transformation,
    TaskPut,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::KeyConverter => "KEY_CONVERTER",
            Stage::ValueConverter => "VALUE_CONVERTER",
            Stage::Transformation => "TRANSFORMATION",
            Stage::TaskPut => "TASK_PUT",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageError {
    pub stage: Stage,
    /// What failed: the converter or transform's name, or the connector type.
    pub class: String,
    pub message: String,
}

impl std::fmt::Display for StageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.stage.name(),
            self.class,
            self.message
        )
    }
}

/// Bytes ready to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

pub struct Pipeline {
    key: Converter,
    value: Converter,
    transforms: Vec<Transform>,
}

impl Pipeline {
    pub fn new(config: &ConnectorConfig) -> Self {
        Self {
            key: config.key_converter,
            value: config.value_converter,
            transforms: config.transforms.clone(),
        }
    }

    fn transform(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, StageError> {
        for t in &self.transforms {
            match t.apply(record) {
                Ok(Some(next)) => record = next,
                Ok(None) => return Ok(None),
                Err(message) => {
                    return Err(StageError {
                        stage: Stage::Transformation,
                        class: t.name().into(),
                        message,
                    })
                }
            }
        }
        Ok(Some(record))
    }

    /// A source's record: transforms, then converters to bytes; `None`
    /// when a filter dropped it.
    pub fn outgoing(&self, record: ConnectRecord) -> Result<Option<Outgoing>, StageError> {
        let Some(record) = self.transform(record)? else {
            return Ok(None);
        };
        let key = self
            .key
            .from_data(&record.key)
            .map_err(|message| StageError {
                stage: Stage::KeyConverter,
                class: self.key.name().into(),
                message,
            })?;
        let value = self
            .value
            .from_data(&record.value)
            .map_err(|message| StageError {
                stage: Stage::ValueConverter,
                class: self.value.name().into(),
                message,
            })?;
        Ok(Some(Outgoing {
            topic: record.topic,
            key,
            value,
        }))
    }

    /// A sink's record: converters from bytes, then transforms; `None`
    /// when a filter dropped it.
    pub fn incoming(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<Option<ConnectRecord>, StageError> {
        let key = self.key.to_data(key).map_err(|message| StageError {
            stage: Stage::KeyConverter,
            class: self.key.name().into(),
            message,
        })?;
        let value = self.value.to_data(value).map_err(|message| StageError {
            stage: Stage::ValueConverter,
            class: self.value.name().into(),
            message,
        })?;
        self.transform(ConnectRecord {
            topic: topic.to_string(),
            key,
            value,
        })
    }
}

/// How a file sink writes a value: text as it is, other JSON as JSON, bytes
/// verbatim, null as `null` (Kafka's FileStreamSink prints the value).
pub fn line_of(data: &Data) -> Vec<u8> {
    match data {
        Data::Bytes(b) => b.clone(),
        Data::Json(serde_json::Value::String(s)) => s.as_bytes().to_vec(),
        Data::Json(other) => other.to_string().into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConnectConfig;
    use serde_json::json;

    fn pipeline(extra: &str) -> Pipeline {
        let yaml = format!(
            "connectors:\n  - name: a\n    type: file-sink\n    file: f\n    topics: [t]\n{extra}"
        );
        Pipeline::new(&ConnectConfig::parse(&yaml).unwrap().connectors[0])
    }

    #[test]
    fn a_sink_converts_then_transforms() {
        let p = pipeline(
            "    value.converter: json\n    transforms:\n      - {type: value-to-key, fields: [id]}\n",
        );
        let r = p
            .incoming("t", None, Some(br#"{"id":3}"#))
            .unwrap()
            .unwrap();
        assert_eq!(r.key, Data::Json(json!({"id": 3})));
        let e = p.incoming("t", None, Some(b"nope")).unwrap_err();
        assert_eq!((e.stage, e.class.as_str()), (Stage::ValueConverter, "json"));
        let e = p.incoming("t", None, Some(br#"{"n":3}"#)).unwrap_err();
        assert_eq!(
            (e.stage, e.class.as_str()),
            (Stage::Transformation, "value-to-key")
        );
    }

    #[test]
    fn a_source_transforms_then_converts() {
        let p = pipeline(
            "    value.converter: json\n    transforms:\n      - {type: filter, field: x, equals: 1}\n",
        );
        let line = ConnectRecord {
            topic: "t".into(),
            key: Data::NULL,
            value: Data::Json(json!({"x": 2})),
        };
        let out = p.outgoing(line.clone()).unwrap().unwrap();
        assert_eq!(out.value, Some(br#"{"x":2}"#.to_vec()));
        assert_eq!(out.key, None);
        let dropped = ConnectRecord {
            value: Data::Json(json!({"x": 1})),
            ..line
        };
        assert_eq!(p.outgoing(dropped), Ok(None));
    }

    #[test]
    fn lines_are_written_as_kafka_prints_them() {
        assert_eq!(line_of(&Data::Json(json!("a b"))), b"a b");
        assert_eq!(line_of(&Data::Json(json!({"a": 1}))), br#"{"a":1}"#);
        assert_eq!(line_of(&Data::NULL), b"null");
    }
}
