-- Read models in PostgreSQL: the same tables as the embedded SQLite read model
-- (migrations/sqlite/read_model), with PostgreSQL types. Identifiers use the "C" collation so
-- that ordering and `>` pagination are bytewise, exactly as in SQLite, whatever the database's
-- locale.

-- How far each projector has folded the log. Written in the same transaction as the read
-- models and the outbox rows it covers, so a restart resumes exactly there. Its row is locked
-- for the whole batch, so two projectors never fold the same events concurrently.
CREATE TABLE projector_positions (
    projector TEXT   NOT NULL PRIMARY KEY,
    position  BIGINT NOT NULL
);

-- One row per subscription: the folded state as JSON text (byte-exact, to continue folding and
-- to answer reads) and the columns queries filter on. The timestamp columns keep microseconds
-- (PostgreSQL's precision); the state keeps the event's full precision.
CREATE TABLE subscriptions (
    subscription_id    TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    partner_id         TEXT COLLATE "C" NOT NULL,
    customer_id        TEXT COLLATE "C" NOT NULL,
    publisher_id       TEXT COLLATE "C" NOT NULL,
    offer_id           TEXT             NOT NULL,
    order_id           TEXT             NOT NULL,
    status             TEXT             NOT NULL,
    version            BIGINT           NOT NULL,
    purchased_at       TIMESTAMPTZ      NOT NULL,
    updated_at         TIMESTAMPTZ      NOT NULL,
    state              TEXT             NOT NULL,
    -- The SaaS API's `resolve` looks subscriptions up by it. Not UNIQUE: the read model must fold
    -- whatever the log holds; the lookup refuses a code matching more than one subscription.
    authorization_code TEXT
);
CREATE INDEX subscriptions_by_customer ON subscriptions (partner_id, customer_id, purchased_at);
CREATE INDEX subscriptions_by_order ON subscriptions (partner_id, order_id);
CREATE INDEX subscriptions_by_publisher ON subscriptions (publisher_id, subscription_id);
CREATE INDEX subscriptions_by_authorization_code ON subscriptions (authorization_code);

-- Events that reached the log but broke a rule when folded: recorded with the reason, never
-- blocking the events after them.
CREATE TABLE rejected_events (
    position        BIGINT           NOT NULL PRIMARY KEY,
    event_id        TEXT             NOT NULL,
    subscription_id TEXT COLLATE "C" NOT NULL,
    code            TEXT             NOT NULL,
    reason          TEXT             NOT NULL
);
CREATE INDEX rejected_events_by_subscription ON rejected_events (subscription_id, position);

-- Billing events derived by the fold (the outbox). `sequence` is the billing feed's cursor:
-- batches are serialized by the projector_positions row lock, so sequences become visible in
-- order. `billing_event_id` is deterministic (UUID v5 of the causing event) for consumer dedupe.
CREATE TABLE billing_outbox (
    sequence         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    billing_event_id TEXT             NOT NULL,
    subscription_id  TEXT COLLATE "C" NOT NULL,
    event_type       TEXT             NOT NULL,
    log_position     BIGINT           NOT NULL,
    payload          TEXT             NOT NULL,
    published_at     TIMESTAMPTZ,
    CONSTRAINT billing_outbox_event_unique UNIQUE (billing_event_id)
);
CREATE INDEX billing_outbox_by_subscription ON billing_outbox (subscription_id, sequence);
