-- The billing relay reads the rows not yet published to the billing topic, oldest first; the
-- partial index keeps that read small however long the outbox grows.
CREATE INDEX billing_outbox_unpublished ON billing_outbox (sequence) WHERE published_at IS NULL;
