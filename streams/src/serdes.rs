//! Serdes: how keys and values become record bytes and back.
//!
//! A serde is a value implementing [`Serde<T>`]; the same value may serve
//! several types ([`Json`] and [`Bincode`] serve every serde-able type), so
//! one `Json` can be passed for both the key and the value of a stream.

use crate::error::StreamsError;
use crate::window::{Window, Windowed};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;

/// Turns values of `T` into bytes and back.
pub trait Serde<T>: Send + Sync + 'static {
    /// The bytes of `value`.
    fn serialize(&self, value: &T) -> Result<Vec<u8>, StreamsError>;
    /// The value `bytes` hold.
    fn deserialize(&self, bytes: &[u8]) -> Result<T, StreamsError>;
}

/// A serde shared by the closures of a topology.
pub(crate) type SharedSerde<T> = Arc<dyn Serde<T>>;

/// Raw bytes, unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bytes;

impl Serde<Vec<u8>> for Bytes {
    fn serialize(&self, value: &Vec<u8>) -> Result<Vec<u8>, StreamsError> {
        Ok(value.clone())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Vec<u8>, StreamsError> {
        Ok(bytes.to_vec())
    }
}

/// UTF-8 strings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Str;

impl Serde<String> for Str {
    fn serialize(&self, value: &String) -> Result<Vec<u8>, StreamsError> {
        Ok(value.as_bytes().to_vec())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<String, StreamsError> {
        String::from_utf8(bytes.to_vec()).map_err(|e| StreamsError::Serde(e.to_string()))
    }
}

/// 64-bit signed integers, 8 bytes big-endian as Kafka's `LongSerde` writes
/// them (the value type of `count`).
#[derive(Debug, Clone, Copy, Default)]
pub struct I64;

impl Serde<i64> for I64 {
    fn serialize(&self, value: &i64) -> Result<Vec<u8>, StreamsError> {
        Ok(value.to_be_bytes().to_vec())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<i64, StreamsError> {
        let array: [u8; 8] = bytes
            .try_into()
            .map_err(|_| StreamsError::Serde(format!("an i64 has 8 bytes, not {}", bytes.len())))?;
        Ok(i64::from_be_bytes(array))
    }
}

/// JSON through serde_json, for any serde type.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl<T: Serialize + DeserializeOwned> Serde<T> for Json {
    fn serialize(&self, value: &T) -> Result<Vec<u8>, StreamsError> {
        serde_json::to_vec(value).map_err(|e| StreamsError::Serde(e.to_string()))
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<T, StreamsError> {
        serde_json::from_slice(bytes).map_err(|e| StreamsError::Serde(e.to_string()))
    }
}

/// bincode 1 (compact, Rust-only), for any serde type.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bincode;

impl<T: Serialize + DeserializeOwned> Serde<T> for Bincode {
    fn serialize(&self, value: &T) -> Result<Vec<u8>, StreamsError> {
        bincode::serialize(value).map_err(|e| StreamsError::Serde(e.to_string()))
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<T, StreamsError> {
        bincode::deserialize(bytes).map_err(|e| StreamsError::Serde(e.to_string()))
    }
}

/// Keys of windowed results: the inner key's bytes, then the window's start
/// and end in milliseconds, each 8 bytes big-endian.
#[derive(Debug, Clone, Copy, Default)]
pub struct WindowedSerde<S>(pub S);

impl<K, S: Serde<K>> Serde<Windowed<K>> for WindowedSerde<S> {
    fn serialize(&self, value: &Windowed<K>) -> Result<Vec<u8>, StreamsError> {
        let mut bytes = self.0.serialize(&value.key)?;
        bytes.extend_from_slice(&value.window.start.to_be_bytes());
        bytes.extend_from_slice(&value.window.end.to_be_bytes());
        Ok(bytes)
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Windowed<K>, StreamsError> {
        let split = bytes
            .len()
            .checked_sub(16)
            .ok_or_else(|| StreamsError::Serde("a windowed key has at least 16 bytes".into()))?;
        let (key, times) = bytes.split_at(split);
        let (start, end) = times.split_at(8);
        let read = |b: &[u8]| b.try_into().map(i64::from_be_bytes);
        let window = Window {
            start: read(start).map_err(|_| StreamsError::Serde("window start".into()))?,
            end: read(end).map_err(|_| StreamsError::Serde("window end".into()))?,
        };
        Ok(Windowed {
            key: self.0.deserialize(key)?,
            window,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_serde_round_trips() {
        let json: Vec<u32> = Json
            .deserialize(&Json.serialize(&vec![1u32, 2]).unwrap())
            .unwrap();
        assert_eq!(json, vec![1, 2]);
        let bin: (String, u8) = Bincode
            .deserialize(&Bincode.serialize(&("a".to_string(), 3u8)).unwrap())
            .unwrap();
        assert_eq!(bin, ("a".to_string(), 3));
        assert_eq!(I64.deserialize(&I64.serialize(&-5).unwrap()).unwrap(), -5);
        let windowed = Windowed {
            key: "k".to_string(),
            window: Window { start: 10, end: 20 },
        };
        let serde = WindowedSerde(Str);
        assert_eq!(
            serde
                .deserialize(&serde.serialize(&windowed).unwrap())
                .unwrap(),
            windowed
        );
    }

    #[test]
    fn malformed_bytes_are_errors() {
        assert!(I64.deserialize(b"abc").is_err());
        assert!(Str.deserialize(&[0xff]).is_err());
        assert!(WindowedSerde(Str).deserialize(b"short").is_err());
        let parsed: Result<u32, _> = Json.deserialize(b"{");
        assert!(parsed.is_err());
    }
}
