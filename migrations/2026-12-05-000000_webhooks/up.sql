-- Webhook endpoints of an account: where to POST the events they subscribe to, and the secret
-- deliveries are signed with (shown once at registration).
CREATE TABLE webhooks (
    id          text COLLATE "C" PRIMARY KEY,
    account_id  text COLLATE "C" NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    url         text NOT NULL,
    events      text[] NOT NULL CHECK (cardinality(events) > 0),
    secret      text NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX webhooks_account ON webhooks (account_id, created_at, id);

-- The delivery outbox: one row per event and subscribed endpoint, written in the transaction
-- of the state change the event reports (a rolled-back change leaves none). `asset` is the
-- asset's row as it was right after the change (right before, for a deletion), as JSON, since
-- a deleted asset's row is gone. A worker claims a due pending row by moving next_attempt_at
-- past its lease and setting lease_token; recording an attempt checks the token.
CREATE TABLE webhook_deliveries (
    id                text COLLATE "C" PRIMARY KEY,
    webhook_id        text COLLATE "C" NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id          text COLLATE "C" NOT NULL,
    event_type        text NOT NULL,
    event_created_at  timestamptz NOT NULL,
    asset             text NOT NULL,
    state             text NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts          integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL,
    lease_token       text
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, event_created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (event_created_at) WHERE state <> 'pending';

-- Every attempt of a delivery: the receiver's status, or why there was none.
CREATE TABLE webhook_attempts (
    delivery_id  text COLLATE "C" NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    n            integer NOT NULL,
    at           timestamptz NOT NULL,
    status       integer,
    error        text,
    duration_ms  bigint NOT NULL,
    PRIMARY KEY (delivery_id, n)
);
