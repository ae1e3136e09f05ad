-- The write side of the Kafka event log (crates/log/src/kafka.rs). The events themselves live in
-- the Kafka events topic; PostgreSQL holds what Kafka cannot give an ingress without
-- transactions: the current version of every stream (optimistic concurrency), the ingress
-- dedupe records, and the outcome of every produced event.
--
-- An append runs in one PostgreSQL transaction that stays open while the events are produced:
-- lock the streams, record the events as `committed` rows, produce, and COMMIT only after
-- the broker acknowledged every message. A message whose transaction rolled back (delivery
-- failed, or the process died) is a phantom in the topic: the projector, before folding a
-- message, inserts a `void` row for its event id. That insert waits for an open append
-- transaction holding the same id and then either finds the committed row (a real event) or
-- wins (a phantom, never folded and never committable again).

-- Global, gap-tolerant positions handed out at append (the `position` of a stored event).
CREATE SEQUENCE log_positions;

-- One row per stream: its length and the hash its next event chains from. Locked FOR UPDATE by
-- every append to that stream, so two ingress processes cannot both append version n+1.
CREATE TABLE log_streams (
    subscription_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    version         BIGINT           NOT NULL,
    last_hash       TEXT             NOT NULL
);

-- Every event produced to the topic and what became of it. Committed rows keep a copy of the
-- envelope so the ingress reads one stream without scanning a partition, and audits can read
-- the log in position order.
CREATE TABLE log_events (
    event_id        TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    outcome         TEXT             NOT NULL CHECK (outcome IN ('committed', 'void')),
    position        BIGINT           UNIQUE,
    subscription_id TEXT COLLATE "C",
    stream_version  BIGINT,
    envelope        TEXT,
    previous_hash   TEXT,
    hash            TEXT,
    CHECK (outcome = 'void' OR (position IS NOT NULL AND subscription_id IS NOT NULL AND stream_version IS NOT NULL
                                AND envelope IS NOT NULL AND previous_hash IS NOT NULL AND hash IS NOT NULL))
);
CREATE UNIQUE INDEX log_events_by_stream ON log_events (subscription_id, stream_version) WHERE outcome = 'committed';

-- Ingress dedupe: webhook ids and idempotency keys with their first answer, written in the
-- append's transaction, so several ingress processes agree on who was first.
CREATE TABLE log_idempotency (
    scope       TEXT        NOT NULL,
    key         TEXT        NOT NULL,
    fingerprint TEXT        NOT NULL,
    response    TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

-- The projector consumer group's positions in the events topic: the next offset to fold per
-- partition, written in the same transaction as the read models it covers. On assignment the
-- projector resumes from here; Kafka's own committed offsets are only a starting hint.
CREATE TABLE consumer_offsets (
    consumer_group  TEXT    NOT NULL,
    topic           TEXT    NOT NULL,
    kafka_partition INTEGER NOT NULL,
    next_offset     BIGINT  NOT NULL,
    PRIMARY KEY (consumer_group, topic, kafka_partition)
);
