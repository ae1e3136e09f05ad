-- One row per subscription: the folded state as JSON (to continue folding and to answer
-- reads) and the columns queries filter on.
CREATE TABLE subscriptions (
    subscription_id TEXT    NOT NULL PRIMARY KEY,
    partner_id      TEXT    NOT NULL,
    customer_id     TEXT    NOT NULL,
    publisher_id    TEXT    NOT NULL,
    offer_id        TEXT    NOT NULL,
    order_id        TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    purchased_at    TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    state           TEXT    NOT NULL
);
CREATE INDEX subscriptions_by_customer ON subscriptions (partner_id, customer_id, purchased_at);
CREATE INDEX subscriptions_by_order ON subscriptions (partner_id, order_id);
CREATE INDEX subscriptions_by_publisher ON subscriptions (publisher_id, subscription_id);

-- Events that reached the log but broke a rule when folded (a race past `decide`): recorded
-- with the reason, never blocking the events after them.
CREATE TABLE rejected_events (
    position        INTEGER NOT NULL PRIMARY KEY,
    event_id        TEXT    NOT NULL,
    subscription_id TEXT    NOT NULL,
    code            TEXT    NOT NULL,
    reason          TEXT    NOT NULL
);
CREATE INDEX rejected_events_by_subscription ON rejected_events (subscription_id, position);
