-- First answers to idempotent requests (webhook ids, partner Idempotency-Key headers), written
-- in the same transaction as the events they caused, so an answer exists exactly when its
-- events do.
CREATE TABLE idempotency_keys (
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    response    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    CONSTRAINT idempotency_keys_pk PRIMARY KEY (scope, key)
);
