//! Caller-chosen ids cannot forge log lines: the real binary, logging text to a file, receives
//! webhooks for publisher ids holding a percent-encoded newline and a fake "webhook accepted"
//! line, a terminal escape sequence, and 10 KB of id, each answered 401 (unknown publisher);
//! a signed webhook whose `webhook-id` is 10 KB is refused (401: at most 255 characters); a
//! 60 KB id does not fit in a request head (431) and reaches no handler. Afterwards the log has
//! no line starting with the forged text, no ESC byte, and no line longer than 4 KB, while the
//! refusals are still there to read.

mod common;

use common::process::{free_port, serve_command, serve_with, service_files};
use common::*;
use fulfillment_ingress::log_safe::MAX_LOGGED_CHARS;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

const FORGED: &str = "2026-01-01T00:00:00Z INFO webhook accepted";

#[tokio::test]
async fn ids_from_paths_and_headers_cannot_forge_log_lines() {
    let files = service_files();
    let port = free_port();
    let mut command = serve_with(port, &files.data, &files.config);
    // Request spans too (tower_http at debug): they carry the request target.
    command.env("FULFILLMENT_LOG_FORMAT", "text").env("RUST_LOG", "info,tower_http=debug");
    let server = serve_command(command, port).await;
    let app = TestApp::at(&format!("http://127.0.0.1:{port}"));

    let long_id = "a".repeat(10_000);
    let forged_path = format!("x%0A{}", FORGED.replace(' ', "%20"));
    for publisher in [forged_path.as_str(), "x%1B[31mred%1B[0m%0D%07", "%E2%80%A8x%C2%85", long_id.as_str()] {
        let body =
            json!({"type": "licenses.assigned", "subscriptionId": uuid::Uuid::new_v4(), "data": {"assignedCount": 1}});
        let reply = app.webhook_signed(publisher, CONTOSO_SECRET, "w-1", &body).await.expect(401);
        assert_eq!(reply.body["detail"], "unknown publisher or invalid signature");
    }
    // A request head over 16 KiB is refused by the HTTP layer itself, before any handler.
    let huge = app.raw(Method::POST, &format!("/webhooks/publishers/{}", "a".repeat(60_000)), &[], Vec::new()).await;
    assert_eq!(huge.status.as_u16(), 431);
    // A signed webhook's id is at most 255 characters: a longer one is refused, and not logged.
    let (_, sub) = app.purchase("cust-1", 3).await;
    let long_webhook_id = format!("msg_{}", "w".repeat(10_000));
    let refused = app.licenses_assigned(&long_webhook_id, &sub, 3).await.expect(401);
    assert_eq!(refused.body["detail"], "malformed webhook-id header");
    let longest_webhook_id = format!("msg_{}", "w".repeat(251));
    app.licenses_assigned(&longest_webhook_id, &sub, 3).await.expect(200);
    app.raw(Method::GET, &format!("/healthz?{}", "q".repeat(10_000)), &[], Vec::new()).await;

    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = std::fs::read(&server.log).unwrap();
    drop(server);
    assert!(!log.contains(&0x1b), "an ESC byte reached the log");
    let log = String::from_utf8(log).expect("the log is UTF-8");
    for line in log.lines() {
        assert!(!line.starts_with(FORGED) && !line.starts_with("2026-01-01"), "a forged line: {line}");
        assert!(line.len() <= 4096, "a line of {} bytes: {}…", line.len(), &line[..200]);
        assert!(!line.contains('\u{2028}') && !line.contains('\u{85}'), "a line separator reached the log: {line}");
    }
    let refused: Vec<&str> = log.lines().filter(|l| l.contains("webhook refused")).collect();
    assert_eq!(refused.len(), 5, "each refusal is logged once:\n{log}");
    assert!(
        refused.iter().any(|l| l.contains(&format!("publisher_id=x\\n{FORGED}"))),
        "the id is logged escaped:\n{log}"
    );
    assert!(refused.iter().any(|l| l.contains("publisher_id=x\\u{1b}[31mred")), "{log}");
    assert!(
        refused.iter().any(|l| l.contains(&format!("publisher_id={}…(cut, ", "a".repeat(MAX_LOGGED_CHARS)))),
        "{log}"
    );
    assert!(!log.contains(&"w".repeat(300)), "the overlong webhook id is not logged");
    let accepted = log
        .lines()
        .find(|l| l.contains("webhook{") && l.contains("webhook accepted"))
        .expect("the signed webhook is logged");
    assert!(accepted.contains(&longest_webhook_id), "{accepted}");
    let spans = log.lines().filter(|l| l.contains("request{method=GET uri=/healthz?qqq") && l.contains("…(cut, "));
    assert!(spans.count() > 0, "the request span is logged, its target cut:\n{log}");
}
