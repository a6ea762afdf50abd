-- The initial schema of Roughy ingest.
--
-- Ids are text in the "C" collation: keyset pagination orders by (created_at, id) and the
-- cursor compares ids byte-wise, whatever the database's default collation is.

CREATE TABLE accounts (
    id          text COLLATE "C" PRIMARY KEY,
    name        text,
    -- Kept equal to the sum of the account's ledger amounts by every writer.
    balance     bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
    created_at  timestamptz NOT NULL
);

CREATE TABLE api_keys (
    id          text COLLATE "C" PRIMARY KEY,
    account_id  text COLLATE "C" NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- SHA-256 of the secret: the secret itself is never stored.
    hash        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);

CREATE TABLE projects (
    id          text COLLATE "C" PRIMARY KEY,
    account_id  text COLLATE "C" NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name        text,
    created_at  timestamptz NOT NULL,
    -- Target of the assets' (project_id, account_id) key: an asset's project is its account's.
    UNIQUE (id, account_id)
);
CREATE INDEX projects_by_account ON projects (account_id, created_at DESC, id DESC);

CREATE TABLE assets (
    id               text COLLATE "C" PRIMARY KEY,
    account_id       text COLLATE "C" NOT NULL,
    project_id       text COLLATE "C" NOT NULL,
    upload_id        text COLLATE "C" NOT NULL UNIQUE,
    state            text NOT NULL CHECK (state IN
                         ('pending_upload', 'processing', 'pending_payment', 'ready', 'failed')),
    -- The format's extension (the canonical media table's key).
    format           text CHECK (format IN ('mp3', 'wav', 'aiff', 'flac', 'ogg', 'opus', 'm4a',
                         'aac', 'mka', 'mp4', 'mov', 'mkv', 'webm')),
    declared_size    bigint NOT NULL CHECK (declared_size BETWEEN 64 AND 53687091200),
    size_bytes       bigint CHECK (size_bytes >= 0),
    duration_ms      bigint CHECK (duration_ms >= 0),
    language         text CHECK (language ~ '^[a-z]{2}$'),
    failure_code     text,
    failure_message  text,
    created_at       timestamptz NOT NULL,
    FOREIGN KEY (project_id, account_id) REFERENCES projects (id, account_id) ON DELETE CASCADE
);
CREATE INDEX assets_by_account ON assets (account_id, created_at DESC, id DESC);
CREATE INDEX assets_by_project ON assets (account_id, project_id, created_at DESC, id DESC);
CREATE INDEX assets_by_state ON assets (account_id, state, created_at DESC, id DESC);
-- The project delete cascade looks assets up by project alone.
CREATE INDEX assets_project ON assets (project_id);

CREATE TABLE uploads (
    id             text COLLATE "C" PRIMARY KEY,
    asset_id       text COLLATE "C" NOT NULL UNIQUE REFERENCES assets (id) ON DELETE CASCADE,
    account_id     text COLLATE "C" NOT NULL,
    length         bigint NOT NULL CHECK (length > 0),
    upload_offset  bigint NOT NULL CHECK (upload_offset >= 0 AND upload_offset <= length),
    expires_at     timestamptz NOT NULL,
    state          text NOT NULL CHECK (state IN ('active', 'completed'))
);
-- The reaper's scan: only active uploads expire.
CREATE INDEX uploads_expiry ON uploads (expires_at, id) WHERE state = 'active';

-- Uploads that existed and are gone, so they answer 410 rather than 404.
CREATE TABLE upload_tombstones (
    id          text COLLATE "C" PRIMARY KEY,
    account_id  text COLLATE "C" NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    reason      text NOT NULL CHECK (reason IN ('terminated', 'expired', 'rejected', 'asset_deleted')),
    at          timestamptz NOT NULL
);
CREATE INDEX upload_tombstones_at ON upload_tombstones (at);

-- The durable processing queue: at most one job per asset.
CREATE TABLE jobs (
    asset_id      text COLLATE "C" PRIMARY KEY REFERENCES assets (id) ON DELETE CASCADE,
    -- Enqueue order (timestamps can tie).
    seq           bigserial NOT NULL UNIQUE,
    available_at  timestamptz NOT NULL,
    lease_token   text,
    leased_until  timestamptz,
    attempts      integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    CHECK ((lease_token IS NULL) = (leased_until IS NULL))
);
CREATE INDEX jobs_due ON jobs (available_at, seq);

CREATE TABLE ledger_entries (
    id             text COLLATE "C" PRIMARY KEY,
    account_id     text COLLATE "C" NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind           text NOT NULL CHECK (kind IN ('top_up', 'asset_charge')),
    amount         bigint NOT NULL,
    balance_after  bigint NOT NULL CHECK (balance_after >= 0),
    -- No foreign key: the charge history outlives the asset.
    asset_id       text COLLATE "C",
    created_at     timestamptz NOT NULL,
    CHECK ((kind = 'asset_charge') = (asset_id IS NOT NULL)),
    CHECK (kind <> 'asset_charge' OR amount < 0)
);
CREATE INDEX ledger_entries_by_account ON ledger_entries (account_id, created_at DESC, id DESC);
-- An asset is charged at most once, ever: even after it was deleted.
CREATE UNIQUE INDEX ledger_entries_one_charge_per_asset ON ledger_entries (asset_id)
    WHERE kind = 'asset_charge';

-- Stored bytes of deleted rows, still to be removed (written with the deletion).
CREATE TABLE purge_outbox (
    seq         bigserial PRIMARY KEY,
    asset_id    text COLLATE "C" NOT NULL,
    upload_id   text COLLATE "C" NOT NULL,
    created_at  timestamptz NOT NULL,
    UNIQUE (asset_id, upload_id)
);

-- Per-upload write leases shared by every server process.
CREATE TABLE upload_locks (
    upload_id       text COLLATE "C" PRIMARY KEY,
    -- The process holding it, and which of its leases.
    holder          text NOT NULL,
    generation      bigint NOT NULL,
    -- Database time of the holder's last heartbeat: a stale row may be taken over.
    heartbeat_at    timestamptz NOT NULL,
    -- Set by a newcomer: the holder should stop writing and release.
    stop_requested  boolean NOT NULL DEFAULT false
);
