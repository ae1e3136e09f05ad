-- Billing events derived by the fold (the outbox). `sequence` is the stable cursor of the
-- billing feed; `billing_event_id` is deterministic (UUID v5 of the causing event), so the
-- same history always yields the same ids and consumers can dedupe.
CREATE TABLE billing_outbox (
    sequence         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    billing_event_id TEXT    NOT NULL,
    subscription_id  TEXT    NOT NULL,
    event_type       TEXT    NOT NULL,
    log_position     INTEGER NOT NULL,
    payload          TEXT    NOT NULL,
    published_at     TEXT,
    CONSTRAINT billing_outbox_event_unique UNIQUE (billing_event_id)
);
CREATE INDEX billing_outbox_by_subscription ON billing_outbox (subscription_id, sequence);
