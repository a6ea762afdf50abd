-- Idempotency-Key of POST /v1/assets and POST /v1/projects, scoped to the account: the request
-- it was first used for (fingerprint), the claim of the request running under it (while
-- in_flight_until is set), and its first successful response, replayed to retries.
-- Forgotten by the reaper at expires_at (24 h after first use).
CREATE TABLE idempotency_keys (
    account_id       text COLLATE "C" NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    key              text COLLATE "C" NOT NULL,
    fingerprint      text NOT NULL,
    claim            text NOT NULL,
    expires_at       timestamptz NOT NULL,
    in_flight_until  timestamptz,
    response_status  smallint,
    -- The response headers a replay repeats, names and values in the same order.
    response_header_names   text[] NOT NULL DEFAULT '{}',
    response_header_values  text[] NOT NULL DEFAULT '{}',
    response_body    bytea,
    PRIMARY KEY (account_id, key),
    CHECK ((response_status IS NULL) = (response_body IS NULL)),
    CHECK (cardinality(response_header_names) = cardinality(response_header_values))
);
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);
