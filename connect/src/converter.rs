//! Converters between the bytes of a Kafka record and [`Data`], as Kafka
//! Connect's ByteArrayConverter, StringConverter and JsonConverter (with
//! its `schema` / `payload` envelope when `schemas.enable` is on).

use crate::data::Data;
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Converter {
    Bytes,
    String,
    Json { schemas_enable: bool },
}

impl Converter {
    /// The name the dead-letter headers give as the failing class.
    pub fn name(&self) -> &'static str {
        match self {
            Converter::Bytes => "bytes",
            Converter::String => "string",
            Converter::Json { .. } => "json",
        }
    }

    /// Bytes read from Kafka to data (a sink's side). A missing key or
    /// value (a tombstone) is null whatever the converter.
    pub fn to_data(&self, bytes: Option<&[u8]>) -> Result<Data, String> {
        let Some(bytes) = bytes else {
            return Ok(Data::NULL);
        };
        match self {
            Converter::Bytes => Ok(Data::Bytes(bytes.to_vec())),
            // As Java's `new String(bytes, UTF_8)`: invalid sequences are
            // replaced, not refused.
            Converter::String => Ok(Data::Json(Value::String(
                String::from_utf8_lossy(bytes).into_owned(),
            ))),
            Converter::Json { schemas_enable } => {
                let value: Value = serde_json::from_slice(bytes)
                    .map_err(|e| format!("the data is not JSON: {e}"))?;
                if !schemas_enable {
                    return Ok(Data::Json(value));
                }
                match value {
                    Value::Object(mut envelope)
                        if envelope.len() == 2
                            && envelope.contains_key("schema")
                            && envelope.contains_key("payload") =>
                    {
                        Ok(Data::Json(envelope.remove("payload").unwrap_or_default()))
                    }
                    _ => Err("JSON with schemas.enable needs an object with exactly the fields \"schema\" and \"payload\"; set schemas.enable to false to read plain JSON".to_string()),
                }
            }
        }
    }

    /// Data to the bytes written to Kafka (a source's side); null becomes
    /// a missing key or value.
    pub fn from_data(&self, data: &Data) -> Result<Option<Vec<u8>>, String> {
        if data.is_null() {
            return Ok(None);
        }
        match (self, data) {
            (Converter::Bytes, Data::Bytes(b)) => Ok(Some(b.clone())),
            (Converter::Bytes, Data::Json(Value::String(s))) => Ok(Some(s.as_bytes().to_vec())),
            (Converter::Bytes, other) => Err(format!(
                "the bytes converter writes bytes or strings, not {}",
                other.kind()
            )),
            (Converter::String, Data::Json(Value::String(s))) => Ok(Some(s.as_bytes().to_vec())),
            (Converter::String, Data::Json(other)) => Ok(Some(other.to_string().into_bytes())),
            (Converter::String, Data::Bytes(b)) => Ok(Some(b.clone())),
            (Converter::Json { .. }, Data::Bytes(_)) => {
                Err("the json converter does not write raw bytes".to_string())
            }
            (Converter::Json { schemas_enable }, Data::Json(value)) => {
                let written = if *schemas_enable {
                    json!({ "schema": schema_of(value), "payload": value })
                } else {
                    value.clone()
                };
                Ok(Some(written.to_string().into_bytes()))
            }
        }
    }
}

/// The Kafka Connect schema JsonConverter would write for `value`, inferred
/// from the value itself: records here carry no schema of their own.
fn schema_of(value: &Value) -> Value {
    match value {
        Value::Null => json!({ "type": "string", "optional": true }),
        Value::Bool(_) => json!({ "type": "boolean", "optional": false }),
        Value::Number(n) if n.is_i64() || n.is_u64() => {
            json!({ "type": "int64", "optional": false })
        }
        Value::Number(_) => json!({ "type": "double", "optional": false }),
        Value::String(_) => json!({ "type": "string", "optional": false }),
        Value::Array(items) => {
            let item = items
                .first()
                .map_or_else(|| json!({ "type": "string", "optional": true }), schema_of);
            json!({ "type": "array", "items": item, "optional": false })
        }
        Value::Object(fields) => {
            let fields: Vec<Value> = fields
                .iter()
                .map(|(name, v)| {
                    let mut field: Map<String, Value> = match schema_of(v) {
                        Value::Object(schema) => schema,
                        _ => Map::new(),
                    };
                    field.insert("field".into(), Value::String(name.clone()));
                    Value::Object(field)
                })
                .collect();
            json!({ "type": "struct", "fields": fields, "optional": false })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_pass_through_and_tombstones_stay_null() {
        let c = Converter::Bytes;
        assert_eq!(c.to_data(Some(b"\xff\x00")), Ok(Data::Bytes(vec![0xff, 0])));
        assert_eq!(c.to_data(None), Ok(Data::NULL));
        assert_eq!(c.from_data(&Data::Bytes(vec![1, 2])), Ok(Some(vec![1, 2])));
        assert_eq!(c.from_data(&Data::NULL), Ok(None));
        assert!(c.from_data(&Data::Json(json!({"a": 1}))).is_err());
    }

    #[test]
    fn strings_replace_invalid_utf8_like_java() {
        let c = Converter::String;
        assert_eq!(
            c.to_data(Some(b"caf\xc3\xa9")),
            Ok(Data::Json(json!("café")))
        );
        assert_eq!(
            c.to_data(Some(b"a\xff")),
            Ok(Data::Json(json!("a\u{fffd}")))
        );
        assert_eq!(
            c.from_data(&Data::Json(json!({"a": 1}))),
            Ok(Some(br#"{"a":1}"#.to_vec()))
        );
    }

    #[test]
    fn plain_json_round_trips() {
        let c = Converter::Json {
            schemas_enable: false,
        };
        let data = c.to_data(Some(br#"{"id":7,"name":"x"}"#)).unwrap();
        assert_eq!(data, Data::Json(json!({"id": 7, "name": "x"})));
        assert_eq!(
            c.from_data(&data).unwrap(),
            Some(br#"{"id":7,"name":"x"}"#.to_vec())
        );
        assert!(c
            .to_data(Some(b"{not json"))
            .unwrap_err()
            .contains("not JSON"));
    }

    #[test]
    fn the_envelope_is_unwrapped_and_written_like_kafka_connect() {
        let c = Converter::Json {
            schemas_enable: true,
        };
        let read = c
            .to_data(Some(
                br#"{"schema":{"type":"string","optional":false},"payload":"hello"}"#,
            ))
            .unwrap();
        assert_eq!(read, Data::Json(json!("hello")));
        assert!(c.to_data(Some(br#"{"payload":"hello"}"#)).is_err());

        let written = c.from_data(&Data::Json(json!({"id": 1, "price": 2.5, "tags": ["a"]})));
        let written: Value = serde_json::from_slice(&written.unwrap().unwrap()).unwrap();
        assert_eq!(
            written,
            json!({
                "schema": {"type": "struct", "optional": false, "fields": [
                    {"field": "id", "type": "int64", "optional": false},
                    {"field": "price", "type": "double", "optional": false},
                    {"field": "tags", "type": "array", "optional": false,
                     "items": {"type": "string", "optional": false}},
                ]},
                "payload": {"id": 1, "price": 2.5, "tags": ["a"]},
            })
        );
        assert_eq!(c.from_data(&Data::NULL), Ok(None));
    }
}
