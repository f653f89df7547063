//! The broker's durable stores in its sled database: committed offsets, ACLs,
//! SCRAM credentials, a single broker's dynamic configs, and opening that
//! database.

pub mod acls;
pub mod dynamic_configs;
pub mod offsets;
pub mod scram;
pub mod state_db;

use std::error::Error;
use std::fmt;
use std::io;

/// A failure of a sled-backed store: what was being done, and the sled,
/// bincode or I/O error behind it, kept whole as the
/// [`source`](Error::source) rather than flattened into a string.
#[derive(Debug)]
pub struct StoreError {
    context: &'static str,
    source: Box<dyn Error + Send + Sync>,
}

impl StoreError {
    /// `source` as an [`io::Error`] of kind `Other`, the error type the
    /// stores' callers handle.
    pub fn io(context: &'static str, source: impl Into<Box<dyn Error + Send + Sync>>) -> io::Error {
        Self::io_kind(io::ErrorKind::Other, context, source)
    }

    /// As [`StoreError::io`], with the I/O error kind callers tell apart.
    pub fn io_kind(
        kind: io::ErrorKind,
        context: &'static str,
        source: impl Into<Box<dyn Error + Send + Sync>>,
    ) -> io::Error {
        io::Error::new(
            kind,
            StoreError {
                context,
                source: source.into(),
            },
        )
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.source)
    }
}

impl Error for StoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_error_keeps_its_source() {
        let bincode_error = bincode::deserialize::<u64>(&[1]).unwrap_err();
        let shown = bincode_error.to_string();
        let e = StoreError::io("offset store", bincode_error);
        assert_eq!(e.to_string(), format!("offset store: {shown}"));
        let store = e.get_ref().expect("wraps a StoreError");
        let source = store.source().expect("has a source");
        assert!(source.downcast_ref::<bincode::Error>().is_some());
    }
}
