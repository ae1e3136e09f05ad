//! A damaged or edited embedded log, on the real binary:
//!
//! - **A damaged index page.** One byte flipped in a leaf page of the log's
//!   `(subscription_id, stream_version)` unique index: `verify` runs SQLite's `integrity_check`
//!   first and exits 2 naming the file; `serve` runs `quick_check` and refuses to start, pointing
//!   at `verify`. Damage met while running (the next append hits it) turns `/readyz` unready
//!   and keeps it so.
//! - **Exit codes of `verify`.** 0 equal and intact, 1 a difference or a broken chain, 2 could
//!   not verify (missing data directory or file).
//! - **A tampered log.** An event edited in `events.sqlite`: `serve` refuses to start, naming
//!   the position, subscription and stream version. After a successful `verify` the start
//!   checks only the tail after the verified position: an edit before it is then left to
//!   `verify` (which still exits 1), an edit after it is refused.
//!
//! Damage is made with the service stopped (killed) and the WAL emptied into the file first, so
//! the flipped byte is what every connection reads; while running, the test empties the WAL
//! through its own connection before flipping (SQLite then rereads every page).

mod common;

use common::process::{free_port, serve, serve_with, service_files, Server, ServiceFiles};
use common::*;
use serde_json::{json, Value};
use sqlx::{Connection, SqliteConnection};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the binary to completion; returns (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fulfillment"))
        .args(args)
        .env("FULFILLMENT_LOG_FORMAT", "text")
        .env("RUST_LOG", "warn")
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn verify(data: &Path) -> (i32, String, String) {
    run(&["verify", "--data-dir", data.to_str().unwrap()])
}

/// Places an order of `line_items` subscriptions for `customer`; returns their ids.
async fn order_many(base: &str, customer: &str, line_items: usize) -> Vec<String> {
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/customers/{customer}/orders"))
        .bearer_auth(PARTNER_1_KEY)
        .json(&json!({"lineItems": vec![line_item(3); line_items]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["lineItems"].as_array().unwrap().iter().map(|l| l["subscriptionId"].as_str().unwrap().to_owned()).collect()
}

/// Places an order for `customer`; returns its subscription id.
async fn order(base: &str, customer: &str) -> String {
    order_many(base, customer, 1).await.remove(0)
}

/// Renames subscription `id` of `customer` (one more event in its stream); returns the status.
async fn try_rename(base: &str, customer: &str, id: &str, name: &str) -> u16 {
    reqwest::Client::new()
        .patch(format!("{base}/v1/customers/{customer}/subscriptions/{id}"))
        .bearer_auth(PARTNER_1_KEY)
        .json(&json!({"friendlyName": name}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn rename(base: &str, customer: &str, id: &str, name: &str) {
    assert_eq!(try_rename(base, customer, id, name).await, 200);
}

/// Waits until the read models have folded every event of the log (so a `verify` right after
/// compares whole histories).
async fn projected(data: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&mut connect(&data.join("events.sqlite")).await)
            .await
            .unwrap();
        let position: i64 = sqlx::query_scalar("SELECT MAX(position) FROM projector_positions")
            .fetch_one(&mut connect(&data.join("read_model.sqlite")).await)
            .await
            .unwrap_or(0);
        if position >= head {
            return;
        }
        assert!(Instant::now() < deadline, "the projector stayed at {position} of {head}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A data directory with `subscriptions` orders in it, each renamed once (two events per
/// stream), the service stopped. Returns the subscription ids.
async fn populated(files: &ServiceFiles, subscriptions: usize) -> Vec<String> {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let server = serve(port, &files.data, &files.config).await;
    let mut ids = Vec::new();
    for i in 0..subscriptions {
        let id = order(&base, "cust-damage").await;
        rename(&base, "cust-damage", &id, &format!("renamed {i}")).await;
        ids.push(id);
    }
    projected(&files.data).await;
    drop(server);
    ids
}

async fn connect(path: &Path) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap()
}

/// Copies every committed page into the file and empties the WAL: from then on the file alone
/// holds the log, and every connection reads its pages afresh.
async fn empty_the_wal(log: &Path) {
    let (busy, _, _): (i64, i64, i64) =
        sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&mut connect(log).await).await.unwrap();
    assert_eq!(busy, 0, "the WAL could not be emptied");
}

/// The `(subscription_id, stream_version)` index of the log: (page size, its leaf pages in key
/// order). With a few events its root page is its only page, the leaf.
async fn stream_order_leaves(log: &Path) -> (u64, Vec<u64>) {
    let mut conn = connect(log).await;
    let page_size: i64 = sqlx::query_scalar("PRAGMA page_size").fetch_one(&mut conn).await.unwrap();
    let name: String = sqlx::query_scalar(
        "SELECT m.name FROM sqlite_master AS m WHERE m.type = 'index' AND m.tbl_name = 'events'
         AND (SELECT group_concat(name, ',') FROM pragma_index_info(m.name)) = 'subscription_id,stream_version'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let leaves: Vec<i64> =
        sqlx::query_scalar("SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY path")
            .bind(&name)
            .fetch_all(&mut conn)
            .await
            .unwrap();
    (page_size as u64, leaves.into_iter().map(|p| p as u64).collect())
}

/// Inverts the byte at `offset` of `file`.
fn flip_byte(file: &Path, offset: u64) {
    let mut bytes = std::fs::read(file).unwrap();
    bytes[offset as usize] = !bytes[offset as usize];
    std::fs::write(file, bytes).unwrap();
}

/// Where in the index leaf to flip: the first byte of its first cell (the cell's payload size,
/// so the cell then overlaps its neighbours), or a byte inside that cell's key. Both lie in
/// the cell content area, past the page header and the cell pointers.
#[derive(Debug, Clone, Copy)]
enum Flip {
    CellSize,
    KeyByte,
}

/// Flips one byte of a cell of a leaf page of the `(subscription_id, stream_version)` index in
/// the stopped log at `log`.
async fn damage_stream_order_index(log: &Path, flip: Flip) {
    empty_the_wal(log).await;
    let (page_size, leaves) = stream_order_leaves(log).await;
    let leaf = leaves[0];
    let page = ((leaf - 1) * page_size) as usize;
    let bytes = std::fs::read(log).unwrap();
    assert_eq!(bytes[page], 0x0a, "page {leaf} is an index leaf");
    // An index leaf's header is 8 bytes; the cell pointers follow, the cells are above them.
    let content_start = u16::from_be_bytes([bytes[page + 5], bytes[page + 6]]) as usize;
    let first_cell = u16::from_be_bytes([bytes[page + 8], bytes[page + 9]]) as usize;
    assert!(first_cell >= content_start);
    let offset = match flip {
        Flip::CellSize => first_cell,
        // Payload size, record header size and 3 serial types take a byte each, then the
        // subscription id's 36 characters: +12 lies inside them.
        Flip::KeyByte => first_cell + 12,
    };
    flip_byte(log, (page + offset) as u64);
}

/// Starts `serve` expecting it to refuse: waits for it to exit (nothing may listen meanwhile)
/// and returns its stderr. A service that does start is killed when the test fails.
async fn refused_start(files: &ServiceFiles) -> String {
    let port = free_port();
    let mut server = Server {
        child: serve_with(port, &files.data, &files.config)
            .env("FULFILLMENT_LOG_FORMAT", "text")
            .env("RUST_LOG", "warn")
            .env_remove("RUST_BACKTRACE")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        // Its standard error is read from the pipe, not from a file.
        log: std::path::PathBuf::new(),
    };
    let child = &mut server.child;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await.is_err(),
            "the service listens on a damaged or edited log"
        );
        assert!(Instant::now() < deadline, "the service neither started nor stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "serve exited with success:\n{stderr}");
    stderr
}

#[tokio::test]
async fn a_damaged_index_page_fails_verify_with_2_and_stops_serve() {
    let files = service_files();
    populated(&files, 5).await;
    let log = files.data.join("events.sqlite");
    let (code, out, err) = verify(&files.data);
    assert_eq!(code, 0, "before the damage: {out}{err}");

    damage_stream_order_index(&log, Flip::CellSize).await;
    let (code, out, err) = verify(&files.data);
    assert_eq!(code, 2, "verify on a damaged log:\n{out}\n{err}");
    assert!(err.contains("the event log is damaged") && err.contains(log.to_str().unwrap()), "{err}");
    assert!(err.contains("SQLite's integrity_check reports"), "{err}");
    assert!(!out.contains("OK"), "{out}");

    let err = refused_start(&files).await;
    assert!(err.contains("refusing to start on the event log") && err.contains(log.to_str().unwrap()), "{err}");
    assert!(err.contains("SQLite's quick_check reports"), "{err}");
    assert!(err.contains(&format!("fulfillment verify --data-dir {}", files.data.display())), "{err}");
}

/// A byte inside an index key leaves the b-tree well-formed: only `integrity_check`, which
/// compares each index with its table, sees it. `verify` runs that; `serve` runs the quick
/// check only (see `SqliteEventLog::open`), so this is for `verify` to find.
#[tokio::test]
async fn a_flipped_index_key_fails_verify_with_2() {
    let files = service_files();
    populated(&files, 5).await;
    damage_stream_order_index(&files.data.join("events.sqlite"), Flip::KeyByte).await;
    let (code, out, err) = verify(&files.data);
    assert_eq!(code, 2, "verify on a damaged log:\n{out}\n{err}");
    assert!(err.contains("the event log is damaged") && err.contains("integrity_check"), "{err}");
}

#[tokio::test]
async fn damage_met_while_running_turns_readyz_unready_for_good() {
    let ServiceFiles { dir, config, data } = service_files();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log_file = dir.path().join("serve.log");
    let mut command = serve_with(port, &data, &config);
    command
        .env("FULFILLMENT_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_file).unwrap());
    let _server = Server { child: command.spawn().unwrap(), log: log_file.clone() };
    let ready = || async { reqwest::get(format!("{base}/readyz")).await.map(|r| r.status().as_u16()).unwrap_or(0) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while ready().await != 200 {
        assert!(Instant::now() < deadline, "the service did not become ready");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Enough subscriptions for the index to span several leaf pages, in key order.
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.extend(order_many(&base, "cust-running", 50).await);
    }
    ids.sort();

    // Under the running service: the WAL emptied (so SQLite rereads every page), then the
    // first leaf of the index, which holds the smallest subscription ids, loses its page type.
    let log = data.join("events.sqlite");
    empty_the_wal(&log).await;
    let (page_size, leaves) = stream_order_leaves(&log).await;
    assert!(leaves.len() >= 2, "the index fits one page: {leaves:?}");
    flip_byte(&log, (leaves[0] - 1) * page_size);
    // A write to a subscription kept in that page meets the damage: 503, and unready.
    assert_eq!(try_rename(&base, "cust-running", &ids[0], "damaged").await, 503);
    let readyz = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(readyz.status(), 503);
    assert_eq!(readyz.json::<Value>().await.unwrap()["log"], false);
    // A write kept in another page still succeeds; the log stays unready all the same: damage
    // does not pass by itself the way a full disk does. It is logged once at ERROR.
    assert_eq!(try_rename(&base, "cust-running", ids.last().unwrap(), "elsewhere").await, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..3 {
        assert_eq!(ready().await, 503);
    }
    let logged = std::fs::read_to_string(&log_file).unwrap();
    let reports: Vec<&str> = logged.lines().filter(|l| l.contains("the event log's storage is damaged")).collect();
    assert_eq!(reports.len(), 1, "{logged}");
    // SQLite names the damage by the first page it trips over: "database disk image is
    // malformed", or "file is not a database" when that is a header page (seen under load).
    let named = reports[0].contains("malformed") || reports[0].contains("not a database");
    assert!(reports[0].contains("\"level\":\"ERROR\"") && named, "{}", reports[0]);
}

#[tokio::test]
async fn verify_exits_0_when_intact_1_on_a_difference_2_when_it_cannot_verify() {
    let files = service_files();
    let ids = populated(&files, 3).await;
    let data = files.data.to_str().unwrap();

    let (code, out, err) = verify(&files.data);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("integrity_check finds events.sqlite and read_model.sqlite intact"), "{out}");

    let (code, out, _) = run(&["verify", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("Exit status:") && out.contains("  2  could not verify"), "{out}");

    // A read-model row edited: 1.
    let read_model = files.data.join("read_model.sqlite");
    sqlx::query("UPDATE subscriptions SET state = json_set(state, '$.quantity', 99) WHERE subscription_id = ?")
        .bind(&ids[0])
        .execute(&mut connect(&read_model).await)
        .await
        .unwrap();
    let (code, out, err) = verify(&files.data);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(&format!("subscription {} differs:", ids[0])), "{out}");

    // Nothing there: 2.
    let missing = files.dir.path().join("no-such-dir");
    let (code, out, err) = verify(&missing);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("no event log at") && err.contains(missing.to_str().unwrap()), "{err}");
    // The read models missing: 2.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", read_model.display()));
    }
    let (code, _, err) = run(&["verify", "--data-dir", data]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no live read model at"), "{err}");
}

/// Edits the stored event at `position` as someone with the file would: its content only
/// (5 licences become 50), its stored hash left as it was.
async fn tamper(log: &Path, position: i64) {
    let mut conn = connect(log).await;
    sqlx::query("DROP TRIGGER IF EXISTS events_no_update").execute(&mut conn).await.unwrap();
    let edited = sqlx::query(
        "UPDATE events SET envelope = replace(envelope, '\"quantity\":3', '\"quantity\":30') WHERE position = ?",
    )
    .bind(position)
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(edited.rows_affected(), 1);
}

/// (subscription id, stream version) of the event at `position`.
async fn event_at(log: &Path, position: i64) -> (String, i64) {
    sqlx::query_as("SELECT subscription_id, stream_version FROM events WHERE position = ?")
        .bind(position)
        .fetch_one(&mut connect(log).await)
        .await
        .unwrap()
}

async fn verified_position(log: &Path) -> Option<i64> {
    sqlx::query_scalar("SELECT position FROM verified_checkpoint")
        .fetch_optional(&mut connect(log).await)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_tampered_log_is_refused_at_start_naming_the_event() {
    let files = service_files();
    populated(&files, 3).await;
    let log = files.data.join("events.sqlite");
    // Position 3 is the second subscription's purchase.
    tamper(&log, 3).await;
    let (subscription, version) = event_at(&log, 3).await;
    let err = refused_start(&files).await;
    assert!(
        err.contains(&format!("subscription {subscription} broken at position 3 (stream version {version})")),
        "{err}"
    );
    assert!(err.contains("this event was edited"), "{err}");
    assert!(err.contains(&format!("fulfillment verify --data-dir {}", files.data.display())), "{err}");
    let (code, out, _) = verify(&files.data);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("subscription {subscription} broken at position 3")), "{out}");
    assert_eq!(verified_position(&log).await, None, "a failed verify stores no checkpoint");
}

/// The start checks the chains only after the position the last successful `verify` vouched
/// for. The trade-off, shown here: an event before it edited in content only (its stored hash
/// left alone, no later event of its stream after the checkpoint) is not seen at start; the
/// next `verify` sees it and exits 1.
#[tokio::test]
async fn after_a_verify_the_start_checks_only_the_tail() {
    let files = service_files();
    let ids = populated(&files, 3).await; // positions 1-6: purchase and rename of each
    let log = files.data.join("events.sqlite");
    let (code, out, err) = verify(&files.data);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verified checkpoint: position 6"), "{out}");
    assert_eq!(verified_position(&log).await, Some(6));

    // The tail after the checkpoint continues a verified stream: its chain links across.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let server = serve(port, &files.data, &files.config).await;
    rename(&base, "cust-damage", &ids[0], "after the checkpoint").await; // position 7
    projected(&files.data).await;
    drop(server);

    // Before the checkpoint: unseen at start, seen by verify.
    tamper(&log, 3).await;
    let server = serve(port, &files.data, &files.config).await;
    drop(server);
    let (code, out, _) = verify(&files.data);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("broken at position 3"), "{out}");
    assert_eq!(verified_position(&log).await, Some(6), "a failed verify keeps the old checkpoint");

    // In the tail: refused.
    let mut conn = connect(&log).await;
    sqlx::query(
        "UPDATE events SET envelope = replace(envelope, 'after the checkpoint', 'after the edit') WHERE position = 7",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let err = refused_start(&files).await;
    assert!(err.contains(&format!("subscription {} broken at position 7 (stream version 3)", ids[0])), "{err}");
}
