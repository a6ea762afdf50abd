//! The HTTP contract suite: one test per rule of the contract, named after it, each driving a
//! real server over loopback HTTP. The README maps each rule to its test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failed expectation is the test's failure"
)]

mod admin;
mod assets;
mod auth;
mod billing;
mod browser;
mod clients;
mod console;
mod conventions;
mod direct_uploads;
mod downloads;
mod idempotency;
mod interop;
mod media_formats;
mod metrics;
mod operations;
mod processing;
mod projects;
mod schemathesis;
mod smoke;
mod tus_protocol;
mod uploads;
mod webhooks;
