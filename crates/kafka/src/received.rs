//! Reading a consumed message the way `fulfillment` writes its topics: header values and the
//! value are UTF-8 text. What the headers mean is the caller's (the event log decodes its
//! events from them).

use crate::KafkaClientError;
use rdkafka::message::{BorrowedHeaders, Headers, Message};

/// The headers and value of one consumed message, read as text.
#[derive(Clone, Copy)]
pub struct ReceivedMessage<'a> {
    headers: Option<&'a BorrowedHeaders>,
    payload: Option<&'a [u8]>,
}

impl<'a> ReceivedMessage<'a> {
    /// Reads `message`.
    pub fn of(message: &'a impl Message<Headers = BorrowedHeaders>) -> Self {
        ReceivedMessage { headers: message.headers(), payload: message.payload() }
    }

    /// The value of header `name` (the first one of that name), as text.
    pub fn header(&self, name: &str) -> Result<String, KafkaClientError> {
        self.headers
            .and_then(|h| h.iter().find(|h| h.key == name))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .ok_or_else(|| KafkaClientError::Unreadable(format!("header {name} is missing")))
    }

    /// The value of header `name` as a number.
    pub fn number_header(&self, name: &str) -> Result<u64, KafkaClientError> {
        self.header(name)?.parse::<u64>().map_err(|e| KafkaClientError::Unreadable(format!("header {name}: {e}")))
    }

    /// The message's value, which must be UTF-8 text.
    pub fn text(&self) -> Result<&'a str, KafkaClientError> {
        let payload = self.payload.ok_or_else(|| KafkaClientError::Unreadable("the message has no value".into()))?;
        std::str::from_utf8(payload).map_err(|e| KafkaClientError::Unreadable(format!("the value is not UTF-8: {e}")))
    }
}
