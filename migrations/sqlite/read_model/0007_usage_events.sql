-- Metered usage the fold accepted (`subscription.usage_reported`), one row per usage event, for
-- the Metering API's `GET /api/usageEvents`. `payload` is the record as JSON text (what the
-- query answers and the fingerprints hash); the other columns are what the query filters on.
CREATE TABLE usage_events (
    usage_event_id  TEXT    NOT NULL PRIMARY KEY,
    subscription_id TEXT    NOT NULL,
    publisher_id    TEXT    NOT NULL,
    offer_id        TEXT    NOT NULL,
    plan_id         TEXT    NOT NULL,
    dimension       TEXT    NOT NULL,
    usage_hour      TEXT    NOT NULL,
    log_position    INTEGER NOT NULL,
    payload         TEXT    NOT NULL
);
CREATE INDEX usage_events_by_publisher ON usage_events (publisher_id, usage_hour, usage_event_id);
