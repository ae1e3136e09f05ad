//! The CloudEvents Kafka protocol binding in binary content mode: the JSON data as the message
//! value, the attributes as `ce_*` headers, so any Kafka tool can tell what a message is
//! without parsing it. Both `fulfillment` topics are written this way: the events topic (with
//! the log's own headers added) and the billing topic.

use rdkafka::message::{Header, OwnedHeaders};

/// The CloudEvents Kafka binding's headers (binary content mode, JSON data) of one message.
#[derive(Debug, Clone, Copy)]
pub struct CloudEvent<'a> {
    /// `ce_id`: unique per event, what consumers dedupe on.
    pub id: &'a str,
    /// `ce_type`.
    pub event_type: &'a str,
    /// `ce_source`.
    pub source: &'a str,
    /// `ce_subject`: the subscription id.
    pub subject: &'a str,
    /// `ce_time`, RFC 3339, when known.
    pub time: Option<&'a str>,
}

impl CloudEvent<'_> {
    /// The headers, to which a producer may add its own.
    pub fn headers(&self) -> OwnedHeaders {
        let headers = OwnedHeaders::new()
            .insert(Header { key: "ce_specversion", value: Some("1.0") })
            .insert(Header { key: "ce_id", value: Some(self.id) })
            .insert(Header { key: "ce_type", value: Some(self.event_type) })
            .insert(Header { key: "ce_source", value: Some(self.source) })
            .insert(Header { key: "ce_subject", value: Some(self.subject) })
            .insert(Header { key: "content-type", value: Some("application/json") });
        match self.time {
            Some(time) => headers.insert(Header { key: "ce_time", value: Some(time) }),
            None => headers,
        }
    }
}
