//! Test support (feature `testing`): one throwaway cluster shared by every test process of a
//! run.
//!
//! nextest runs each test in a process of its own: one cluster per process would cost an
//! initdb each, so the processes join one cluster ([`EmbeddedPostgres::start_shared`]), which
//! a watcher stops and removes a few seconds after the last of them exits. The cluster runs
//! without fsync: it is thrown away.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::{EmbeddedOptions, EmbeddedPostgres};

static CLUSTER: OnceLock<EmbeddedPostgres> = OnceLock::new();

/// Where the shared cluster lives: short (a unix socket path is at most 107 bytes) and distinct
/// per build directory, so two checkouts on one machine do not share one.
fn base_dir() -> PathBuf {
    let mut hasher = DefaultHasher::new();
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(PathBuf::from))
        .hash(&mut hasher);
    std::env::temp_dir().join(format!("roughy-pg-{:016x}", hasher.finish()))
}

/// The shared cluster, started (or joined) by the first caller of this process.
///
/// # Panics
/// When the cluster cannot start: a test that needs PostgreSQL fails loudly, never skips.
pub fn cluster() -> &'static EmbeddedPostgres {
    CLUSTER.get_or_init(|| {
        // Its own thread and runtime: the tests' runtimes come and go, the cluster stays.
        let started = std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
                .and_then(|runtime| {
                    runtime
                        .block_on(EmbeddedPostgres::start_shared(
                            &base_dir(),
                            EmbeddedOptions { durable: false },
                        ))
                        .map_err(|e| e.to_string())
                })
        })
        .join();
        match started {
            Ok(Ok(cluster)) => cluster,
            Ok(Err(e)) => {
                panic!("the throwaway PostgreSQL cluster must start (no test is skipped): {e}")
            }
            Err(_) => panic!("the throwaway PostgreSQL cluster's start-up thread panicked"),
        }
    })
}
