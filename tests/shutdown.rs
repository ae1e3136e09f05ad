//! The ordered stop of the service: the HTTP server stops accepting and answers every request
//! in flight; only then is the projector stopped, after folding what those requests appended;
//! storage closes last. Were the parts stopped together (one token), the webhook below would be
//! answered after the projector had gone, and its event would be missing from the read models
//! when the stop returned.

mod common;

use common::*;
use fulfillment::ReadModelBackend;
use fulfillment_log::{EventLog, SqliteEventLog};
use fulfillment_read_model::{FoldPosition, SqliteReadModel};
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn a_write_in_flight_when_the_stop_begins_is_answered_and_folded_before_storage_closes() {
    let app =
        TestApp::spawn_with(Parts::Embedded { read_models: ReadModelBackend::Embedded, folding: folding(None) }).await;
    let (_, sub) = app.purchase("customer-1", 5).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let data_dir = app.data_dir.clone();

    // A signed webhook whose body is only half sent when the stop begins.
    let body = json!({"type": "licenses.assigned", "subscriptionId": sub, "data": {"assignedCount": 5}}).to_string();
    let ts = app.now().timestamp();
    let signature = sign(CONTOSO_SECRET, "msg_in_flight", ts, body.as_bytes());
    let head = format!(
        "POST /webhooks/publishers/contoso HTTP/1.1\r\nhost: {addr}\r\nwebhook-id: msg_in_flight\r\n\
         webhook-timestamp: {ts}\r\nwebhook-signature: {signature}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    let (first_half, second_half) = body.as_bytes().split_at(body.len() / 2);
    let mut client = TcpStream::connect(&addr).await.unwrap();
    client.write_all(head.as_bytes()).await.unwrap();
    client.write_all(first_half).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await; // the server reads the head

    let stopping = tokio::spawn(app.stop());
    // The server stops accepting at once...
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(&addr).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "the server still accepts connections while stopping");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...but waits for the request in flight.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!stopping.is_finished(), "the stop returned while a request was in flight");
    client.write_all(second_half).await.unwrap();
    let mut response = String::new();
    client.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "the request in flight is answered: {response}");
    let _keep = stopping.await.unwrap();

    // Everything the HTTP server accepted was folded before the read models were closed.
    let log = SqliteEventLog::open_read_only(&data_dir.join("events.sqlite")).await.unwrap();
    let head = *log.head().borrow();
    assert_eq!(head, 2, "the purchase and the webhook's event are in the log");
    let store = SqliteReadModel::open(&data_dir.join("read_model.sqlite")).await.unwrap();
    assert_eq!(store.position().await.unwrap(), head, "the projector folded the event of the request in flight");
}
