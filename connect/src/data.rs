//! The record a connector works on between its converters: key and value
//! as data (not bytes), the topic, and where it came from.

use serde_json::Value;

/// A key or a value. Structured data is JSON (Kafka Connect's structs,
/// maps, arrays, strings and numbers all have a JSON form); raw bytes stay
/// bytes, as the bytes converter gives them. A null is `Json(Null)`.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    Bytes(Vec<u8>),
    Json(Value),
}

impl Data {
    pub const NULL: Data = Data::Json(Value::Null);

    pub fn is_null(&self) -> bool {
        matches!(self, Data::Json(Value::Null))
    }

    /// Its type in words, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Data::Bytes(_) => "bytes",
            Data::Json(Value::Null) => "null",
            Data::Json(Value::Bool(_)) => "a boolean",
            Data::Json(Value::Number(_)) => "a number",
            Data::Json(Value::String(_)) => "a string",
            Data::Json(Value::Array(_)) => "an array",
            Data::Json(Value::Object(_)) => "a struct",
        }
    }
}

/// A record inside the pipeline: a source builds one per line, a sink per
/// consumed message.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectRecord {
    pub topic: String,
    pub key: Data,
    pub value: Data,
}
