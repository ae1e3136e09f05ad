//! Events for the log's unit tests: a purchase and the two webhook facts, for any subscription
//! id (built by `fulfillment_core::fixtures`, like every crate's test events).

use fulfillment_core::fixtures::{envelope, purchase};
use fulfillment_core::{Event, EventEnvelope, SubscriptionId};
use uuid::Uuid;

pub(crate) fn purchased(id: SubscriptionId) -> EventEnvelope {
    envelope(id, purchase("customer-1", "code"))
}

pub(crate) fn licenses_assigned(id: SubscriptionId, assigned_count: u32) -> EventEnvelope {
    envelope(id, Event::LicensesAssigned { assigned_count })
}

pub(crate) fn setup_confirmed(id: SubscriptionId, quantity: u32) -> EventEnvelope {
    envelope(id, Event::SetupConfirmed { plan_id: "standard".into(), quantity })
}

pub(crate) fn new_id() -> SubscriptionId {
    SubscriptionId(Uuid::new_v4())
}

/// Where the `(subscription_id, stream_version)` unique index of the log at `path` starts:
/// (page size, root page number). With a few events the root page is its only (leaf) page.
pub(crate) fn stream_order_index_root(path: &std::path::Path) -> (u64, u64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    let root: i64 = conn
        .query_row(
            "SELECT rootpage FROM sqlite_master AS m WHERE m.type = 'index' AND m.tbl_name = 'events'
             AND (SELECT group_concat(name, ',') FROM pragma_index_info(m.name)) = 'subscription_id,stream_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    (page_size as u64, root as u64)
}

/// Copies every committed page into the file and empties the WAL, so the file alone holds the
/// log and every connection reads it afresh.
pub(crate) fn checkpoint_truncate(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0)).unwrap();
    assert_eq!(busy, 0, "the WAL could not be emptied");
}

/// Inverts the byte at `offset` of the file at `path`.
pub(crate) fn flip_byte(path: &std::path::Path, offset: u64) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut byte = [0u8];
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.read_exact(&mut byte).unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(&[!byte[0]]).unwrap();
    file.sync_all().unwrap();
}
