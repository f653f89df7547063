//! The one error type of the embedding API.

use kafka_protocol::ResponseError;
use std::fmt;
use std::io;

/// What can go wrong with an embedded broker, its producers and consumers.
///
/// Refusals carry Kafka's own error code, so code that handles
/// `TOPIC_ALREADY_EXISTS` or `UNKNOWN_TOPIC_OR_PARTITION` from a Kafka client
/// handles them here the same way:
///
/// ```
/// # actorlog::block_on(async {
/// use actorlog::{Broker, Error, ResponseError};
///
/// let broker = Broker::builder().in_memory().start().await?;
/// broker.create_topic("orders", 3).await?;
/// match broker.create_topic("orders", 3).await {
///     Err(Error::Kafka { code: ResponseError::TopicAlreadyExists, .. }) => {}
///     other => panic!("expected TOPIC_ALREADY_EXISTS, got {other:?}"),
/// }
/// broker.shutdown().await
/// # }).unwrap();
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The builder's settings cannot work; the message names the setting.
    InvalidConfig(String),
    /// Reading or writing the data, binding the listener, starting threads.
    Io(io::Error),
    /// The broker refused a request, with the Kafka error code a client
    /// would have got.
    Kafka {
        /// Kafka's error code.
        code: ResponseError,
        /// What was refused, and why.
        message: String,
    },
    /// The broker has stopped, or stopped while answering.
    Stopped,
}

impl Error {
    pub(crate) fn kafka(code: ResponseError, message: impl Into<String>) -> Error {
        Error::Kafka {
            code,
            message: message.into(),
        }
    }

    /// The Kafka error code, for a refusal.
    pub fn code(&self) -> Option<ResponseError> {
        match self {
            Error::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidConfig(message) => write!(f, "invalid configuration: {message}"),
            Error::Io(e) => write!(f, "{e}"),
            Error::Kafka { code, message } => write!(f, "{message}: {code}"),
            Error::Stopped => f.write_str("the broker has stopped"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            // The code is in the message already.
            Error::Kafka { .. } | Error::InvalidConfig(_) | Error::Stopped => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<actorlog_actors::broker::TopicError> for Error {
    fn from(e: actorlog_actors::broker::TopicError) -> Self {
        Error::kafka(e.code, e.message)
    }
}
