-- The SaaS API's `resolve` finds a subscription by the authorization code (the landing page's
-- `token`). Not UNIQUE: the read model must fold whatever the log holds without stalling, and
-- the lookup refuses a code that matches more than one subscription. Backfilled from the folded
-- state for rows written before this column existed.
ALTER TABLE subscriptions ADD COLUMN authorization_code TEXT;
UPDATE subscriptions SET authorization_code = json_extract(state, '$.authorizationCode');
CREATE INDEX subscriptions_by_authorization_code ON subscriptions (authorization_code);
