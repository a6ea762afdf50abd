//! The tables of `migrations/`, as Diesel sees them. Kept by hand in step with the SQL.

diesel::table! {
    accounts (id) {
        id -> Text,
        name -> Nullable<Text>,
        balance -> BigInt,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        account_id -> Text,
        hash -> Text,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    projects (id) {
        id -> Text,
        account_id -> Text,
        name -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    assets (id) {
        id -> Text,
        account_id -> Text,
        project_id -> Text,
        upload_id -> Text,
        state -> Text,
        format -> Nullable<Text>,
        declared_size -> BigInt,
        size_bytes -> Nullable<BigInt>,
        duration_ms -> Nullable<BigInt>,
        language -> Nullable<Text>,
        failure_code -> Nullable<Text>,
        failure_message -> Nullable<Text>,
        created_at -> Timestamptz,
        failed_at -> Nullable<Timestamptz>,
        bytes_purged_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    uploads (id) {
        id -> Text,
        asset_id -> Text,
        account_id -> Text,
        length -> BigInt,
        upload_offset -> BigInt,
        expires_at -> Timestamptz,
        state -> Text,
        staging -> Text,
    }
}

diesel::table! {
    upload_tombstones (id) {
        id -> Text,
        account_id -> Text,
        reason -> Text,
        at -> Timestamptz,
    }
}

diesel::table! {
    jobs (asset_id) {
        asset_id -> Text,
        seq -> BigInt,
        available_at -> Timestamptz,
        lease_token -> Nullable<Text>,
        leased_until -> Nullable<Timestamptz>,
        attempts -> Integer,
    }
}

diesel::table! {
    ledger_entries (id) {
        id -> Text,
        account_id -> Text,
        kind -> Text,
        amount -> BigInt,
        balance_after -> BigInt,
        asset_id -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    purge_outbox (seq) {
        seq -> BigInt,
        asset_id -> Text,
        upload_id -> Text,
        created_at -> Timestamptz,
        staging -> Text,
    }
}

diesel::table! {
    upload_locks (upload_id) {
        upload_id -> Text,
        holder -> Text,
        generation -> BigInt,
        heartbeat_at -> Timestamptz,
        stop_requested -> Bool,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    accounts,
    api_keys,
    projects,
    assets,
    uploads,
    upload_tombstones,
    jobs,
    ledger_entries,
    purge_outbox,
    upload_locks,
);
