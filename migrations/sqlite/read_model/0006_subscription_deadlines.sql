-- The scheduler finds due deadlines (term ends, activation deadlines, the end of a suspension's
-- grace period) through this column, in due order, without scanning every subscription. It is
-- core's `Subscription::next_deadline`, written with each folded state; NULL once nothing is
-- due any more (cancelled, expired). Rows folded before this column existed stay NULL: rebuild
-- the read models (`fulfillment replay`) after upgrading so they get their terms and deadlines.
ALTER TABLE subscriptions ADD COLUMN next_deadline_at TEXT;
CREATE INDEX subscriptions_by_next_deadline ON subscriptions (next_deadline_at, subscription_id)
    WHERE next_deadline_at IS NOT NULL;
