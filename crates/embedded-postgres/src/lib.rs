//! An embedded PostgreSQL cluster: the service's default database when `DATABASE_URL` is
//! unset, and the throwaway database of the tests. This crate has one job: to run the
//! machine's own PostgreSQL server on a directory, for one owner process, and hand out the
//! URLs that reach it. It knows nothing of the service's tables (the repository adapter,
//! `roughy-postgres`, connects to the URL and migrates).
//!
//! [`EmbeddedPostgres::start`] runs the machine's PostgreSQL binaries (`initdb`, `pg_ctl`,
//! `postgres`, found on `PATH` or under the newest `/usr/lib/postgresql/*/bin`; else it fails
//! saying to install PostgreSQL or set `DATABASE_URL`) on a directory:
//!
//! ```text
//! <dir>/data/            the cluster (initdb'd the first time; reused afterwards)
//! <dir>/.s.PGSQL.5432    the unix socket: the cluster listens on no TCP port at all
//! <dir>/postgres.log     the server log
//! <dir>/roughy.lock      the owner lock: held (flock) by the one process that owns the cluster
//! ```
//!
//! The first start initdb's `<dir>/data` (trust auth, superuser `roughy`, UTF-8, C locale),
//! every start writes the settings (`listen_addresses = ''`, the socket in `<dir>`), starts the
//! server with `pg_ctl -w` and creates the `roughy` database if missing. A later start reuses
//! the cluster: it removes a stale `postmaster.pid`, or adopts a server left running by a
//! process that was killed. [`EmbeddedPostgres::url`] is
//! `postgres://roughy@<percent-encoded dir>/roughy`; [`EmbeddedPostgres::create_database`]
//! makes more databases (each test has its own).
//!
//! One process owns a cluster: [`EmbeddedPostgres::start`] takes an exclusive `flock` on
//! `roughy.lock` before anything else (initdb included) and holds it until the cluster is
//! stopped. A second process on the same directory is refused with
//! [`EmbeddedError::InUse`], which names the owner's pid and the URL that shares the cluster
//! instead. The kernel drops the lock when its process dies, however it dies, so a killed
//! owner never blocks the next start (which adopts the server it left running). Several server
//! processes may still share one cluster: start it in one, pass its `url()` to the others as
//! `DATABASE_URL`.
//!
//! Authentication is `trust`, which is safe because only the socket exists and it lives in a
//! directory only its owner can enter. PostgreSQL refuses to run as root: a root process runs
//! the binaries as the `postgres` user, hands the directory to it and makes the parent
//! directories traversable (o+x).
//!
//! The test processes of one run share one throwaway cluster instead
//! ([`EmbeddedPostgres::start_shared`]; with the `testing` feature, `testing::cluster()`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use roughy_embedded_postgres::EmbeddedPostgres;
//!
//! let cluster = EmbeddedPostgres::start("var/pg".as_ref()).await?; // initdb the first time
//! let url = cluster.url(); // connect the repository to it
//! // … serve …
//! cluster.stop()?; // pg_ctl stop -m fast (also on drop)
//! # drop(url);
//! # Ok(()) }
//! ```

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use thiserror::Error;

#[cfg(feature = "testing")]
pub mod testing;

/// The cluster's superuser and the service's database.
pub const USER: &str = "roughy";
/// The database the service uses.
pub const DATABASE: &str = "roughy";
/// The port number names the socket file (`.s.PGSQL.5432`); no TCP port is opened.
const PORT: u16 = 5432;
/// The longest unix socket path the kernel takes (`sun_path` minus its NUL).
const MAX_SOCKET_PATH: usize = 107;
/// The file our settings live in, included from `postgresql.conf`.
const SETTINGS_FILE: &str = "roughy.conf";
/// The owner lock: the process holding its `flock` owns the cluster; it holds its pid.
const OWNER_LOCK_FILE: &str = "roughy.lock";

/// Why the embedded cluster could not be started or used.
#[derive(Debug, Error)]
pub enum EmbeddedError {
    /// No PostgreSQL server binaries on this machine.
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or under \
         /usr/lib/postgresql/*/bin: install PostgreSQL (apt-get install postgresql) or set \
         DATABASE_URL to use an external server"
    )]
    BinariesNotFound,
    /// Running as root without a `postgres` user to run the server as.
    #[error(
        "PostgreSQL refuses to run as root and there is no `postgres` user to run it as: \
         create one (apt-get install postgresql does), run as another user, or set DATABASE_URL"
    )]
    NoPostgresUser,
    /// The socket path would be longer than a unix socket path may be.
    #[error(
        "the socket path {0} is longer than {MAX_SOCKET_PATH} bytes: choose a shorter data \
         directory"
    )]
    SocketPathTooLong(PathBuf),
    /// A file system step failed.
    #[error("cannot {action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A PostgreSQL command failed.
    #[error("`{command}` failed ({status}): {output}")]
    Command {
        /// The command.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed (and, for the server, the end of its log).
        output: String,
    },
    /// A database name this helper will not create.
    #[error("invalid database name {0:?}: use 1 to 63 lowercase letters, digits and _")]
    InvalidName(String),
    /// The started cluster did not answer.
    #[error("cannot use the embedded PostgreSQL: {0}")]
    Database(String),
    /// Another process owns the cluster in this directory (it holds the owner lock).
    #[error(
        "the embedded PostgreSQL in {} is already in use by {owner}: stop that process first, \
         or share its cluster by starting this one with DATABASE_URL={url}",
        dir.display()
    )]
    InUse {
        /// The cluster's directory.
        dir: PathBuf,
        /// The owning process, as `pid N (name)` when known.
        owner: String,
        /// The connection URL of the service's database over the cluster's socket.
        url: String,
    },
}

/// How the cluster treats durability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmbeddedOptions {
    /// `true` (the default): fsync as PostgreSQL normally does. `false`: no fsync at all,
    /// for throwaway test clusters only (a crash of the machine may corrupt the cluster).
    pub durable: bool,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self { durable: true }
    }
}

/// A user the server runs as (when this process is root).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RunAs {
    uid: u32,
    gid: u32,
}

/// A running PostgreSQL cluster kept in a directory, listening only on a unix socket there.
///
/// Dropping it stops the cluster (`pg_ctl stop -m fast`), as [`EmbeddedPostgres::stop`] does.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    dir: PathBuf,
    bin: PathBuf,
    run_as: Option<RunAs>,
    running: bool,
    /// The owner lock, released when this value is dropped (after the cluster is stopped);
    /// `None` for a shared cluster.
    _owner: Option<OwnerLock>,
}

impl EmbeddedPostgres {
    /// Starts the cluster in `dir` with the default (durable) options: take the owner lock,
    /// initdb the first time, reuse it afterwards (recovering from a stale `postmaster.pid`,
    /// or adopting a server left running by a process that died), and create the `roughy`
    /// database if missing. The owner lock is held until the cluster is stopped.
    ///
    /// # Errors
    /// [`EmbeddedError::InUse`] when another live process owns the cluster;
    /// [`EmbeddedError::BinariesNotFound`] when PostgreSQL is not installed; any failure of
    /// the file system, `initdb` or `pg_ctl` (with the end of the server log).
    pub async fn start(dir: &Path) -> Result<Self, EmbeddedError> {
        Self::start_with(dir, EmbeddedOptions::default()).await
    }

    /// Starts the cluster in `dir` with these options. See [`EmbeddedPostgres::start`].
    ///
    /// # Errors
    /// As [`EmbeddedPostgres::start`].
    pub async fn start_with(dir: &Path, options: EmbeddedOptions) -> Result<Self, EmbeddedError> {
        let dir = dir.to_owned();
        // initdb and pg_ctl block for seconds: keep them off the async workers.
        let cluster =
            tokio::task::spawn_blocking(move || Self::start_blocking(&dir, options, Owner::Own))
                .await
                .map_err(|e| EmbeddedError::Database(format!("the start-up task failed: {e}")))??;
        cluster.create_database(DATABASE).await?;
        Ok(cluster)
    }

    /// Starts, or joins, a cluster shared by every process that calls this with the same
    /// `base` directory at about the same time: the test binaries of one run (nextest runs
    /// each test in a process of its own, and one cluster per process would cost an initdb
    /// each).
    ///
    /// The cluster lives in `<base>/pg`. Each caller registers its pid under `<base>/users`;
    /// a watcher process stops the cluster and removes `<base>/pg` once no registered process
    /// has been alive for a few seconds. The returned value never stops the cluster itself
    /// (dropping it does nothing), since other processes may still use it.
    ///
    /// # Errors
    /// As [`EmbeddedPostgres::start`], and when the start lock cannot be taken.
    pub async fn start_shared(
        base: &Path,
        options: EmbeddedOptions,
    ) -> Result<Self, EmbeddedError> {
        let base = base.to_owned();
        let cluster =
            tokio::task::spawn_blocking(move || Self::start_shared_blocking(&base, options))
                .await
                .map_err(|e| EmbeddedError::Database(format!("the start-up task failed: {e}")))??;
        cluster.create_database(DATABASE).await?;
        Ok(cluster)
    }

    fn start_shared_blocking(base: &Path, options: EmbeddedOptions) -> Result<Self, EmbeddedError> {
        let users = base.join("users");
        fs::create_dir_all(&users).map_err(io_error(format!("create {}", users.display())))?;
        // One process at a time starts (or joins) the cluster, and the watcher takes the same
        // lock before it stops it, so a newcomer never joins a cluster being stopped.
        let _lock = StartLock::acquire(&base.join("lock"))?;
        fs::create_dir_all(&users).map_err(io_error(format!("create {}", users.display())))?;
        let me = users.join(std::process::id().to_string());
        fs::write(&me, b"").map_err(io_error(format!("register in {}", users.display())))?;
        let mut cluster = Self::start_blocking(&base.join("pg"), options, Owner::Shared)?;
        // Other processes use it too: only the watcher stops it.
        cluster.running = false;
        ensure_shared_watcher(base)?;
        Ok(cluster)
    }

    /// The blocking part of the start: directories, the owner lock, initdb, settings,
    /// pg_ctl start.
    fn start_blocking(
        dir: &Path,
        options: EmbeddedOptions,
        owner: Owner,
    ) -> Result<Self, EmbeddedError> {
        let bin = find_binaries().ok_or(EmbeddedError::BinariesNotFound)?;
        let run_as = if running_as_root() {
            Some(postgres_user()?.ok_or(EmbeddedError::NoPostgresUser)?)
        } else {
            None
        };
        fs::create_dir_all(dir).map_err(io_error(format!("create {}", dir.display())))?;
        let dir = fs::canonicalize(dir).map_err(io_error(format!("resolve {}", dir.display())))?;
        let socket = dir.join(format!(".s.PGSQL.{PORT}"));
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(EmbeddedError::SocketPathTooLong(socket));
        }
        // Before anything touches the cluster: of two processes starting together, exactly
        // one gets past here, so only one ever runs initdb or pg_ctl on it.
        let owner = match owner {
            Owner::Own => Some(OwnerLock::acquire(&dir)?),
            Owner::Shared => None,
        };
        if let Some(user) = run_as {
            hand_over(&dir, user)?;
        }
        let mut cluster = Self {
            dir,
            bin,
            run_as,
            running: false,
            _owner: owner,
        };
        cluster.init(options)?;
        cluster.write_settings(options)?;
        if cluster.server_is_running() {
            tracing::info!(dir = %cluster.dir.display(), "adopting the embedded PostgreSQL left running");
        } else {
            cluster.remove_stale_lock_files()?;
            let log = cluster.log_path();
            let data = cluster.data_dir();
            cluster.run(
                "pg_ctl",
                &[
                    "start".as_ref(),
                    "-w".as_ref(),
                    "-t".as_ref(),
                    "60".as_ref(),
                    "-s".as_ref(),
                    "-D".as_ref(),
                    data.as_os_str(),
                    "-l".as_ref(),
                    log.as_os_str(),
                ],
            )?;
            tracing::info!(dir = %cluster.dir.display(), "started the embedded PostgreSQL");
        }
        cluster.running = true;
        Ok(cluster)
    }

    /// The cluster's directory (holding `data/`, the socket and the log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The connection URL of the service's database, over the unix socket.
    pub fn url(&self) -> String {
        self.url_for(DATABASE)
    }

    /// The connection URL of another database of this cluster.
    pub fn url_for(&self, database: &str) -> String {
        socket_url(&self.dir, database)
    }

    /// Creates a database if it does not exist yet (tests give each test its own).
    ///
    /// # Errors
    /// [`EmbeddedError::InvalidName`] unless `name` is 1–63 of `[a-z0-9_]`;
    /// [`EmbeddedError::Database`] when the cluster does not answer.
    pub async fn create_database(&self, name: &str) -> Result<(), EmbeddedError> {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(EmbeddedError::InvalidName(name.to_owned()));
        }
        let mut conn = AsyncPgConnection::establish(&self.url_for("postgres"))
            .await
            .map_err(|e| EmbeddedError::Database(e.to_string()))?;
        // CREATE DATABASE has no IF NOT EXISTS: an existing one is the same success, and so
        // is losing a race to create it (reported as a unique violation on the catalog).
        match diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if ["already exists", "pg_database_datname_index"]
                    .iter()
                    .any(|m| e.to_string().contains(m)) =>
            {
                Ok(())
            }
            Err(e) => Err(EmbeddedError::Database(e.to_string())),
        }
    }

    /// Stops the cluster (`pg_ctl stop -m fast`: sessions are cut, everything committed is
    /// kept). Idempotent.
    ///
    /// # Errors
    /// When `pg_ctl stop` fails.
    pub fn stop(mut self) -> Result<(), EmbeddedError> {
        self.stop_in_place()
    }

    /// Leaves the cluster as a process killed with `kill -9` would: the server keeps running
    /// and the owner lock is released, so the next start adopts it (tests of that recovery).
    #[cfg(feature = "testing")]
    pub fn abandon(mut self) {
        self.running = false;
        self._owner = None;
    }

    fn stop_in_place(&mut self) -> Result<(), EmbeddedError> {
        if !self.running {
            return Ok(());
        }
        self.running = false;
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &[
                "stop".as_ref(),
                "-w".as_ref(),
                "-s".as_ref(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
            ],
        )?;
        tracing::info!(dir = %self.dir.display(), "stopped the embedded PostgreSQL");
        Ok(())
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// initdb, unless the cluster exists.
    fn init(&self, options: EmbeddedOptions) -> Result<(), EmbeddedError> {
        let data = self.data_dir();
        if data.join("PG_VERSION").is_file() {
            return Ok(());
        }
        // A half-made data directory (initdb interrupted) holds no data; initdb needs it gone.
        if data.exists() {
            fs::remove_dir_all(&data).map_err(io_error(format!(
                "remove the unfinished {}",
                data.display()
            )))?;
        }
        let mut args = vec![
            "-D".as_ref(),
            data.as_os_str(),
            "--auth=trust".as_ref(),
            "--username".as_ref(),
            USER.as_ref(),
            "--encoding=UTF8".as_ref(),
            // The C locale exists everywhere, and orders text byte-wise as the ids need.
            "--locale=C".as_ref(),
        ];
        if !options.durable {
            args.push("--no-sync".as_ref());
        }
        self.run("initdb", &args)?;
        tracing::info!(dir = %self.dir.display(), "initialised the embedded PostgreSQL cluster");
        Ok(())
    }

    /// Writes our settings (socket only, in our directory) and includes them from
    /// `postgresql.conf`. Rewritten on every start, so a moved directory still works.
    fn write_settings(&self, options: EmbeddedOptions) -> Result<(), EmbeddedError> {
        let data = self.data_dir();
        let quoted_dir = self.dir.to_string_lossy().replace('\'', "''");
        let mut settings = format!(
            "# Written by roughy-embedded-postgres on every start.\n\
             listen_addresses = ''\n\
             unix_socket_directories = '{quoted_dir}'\n\
             unix_socket_permissions = 0700\n\
             port = {PORT}\n"
        );
        if !options.durable {
            settings.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        }
        let settings_path = data.join(SETTINGS_FILE);
        fs::write(&settings_path, settings)
            .map_err(io_error(format!("write {}", settings_path.display())))?;
        let conf = data.join("postgresql.conf");
        let current =
            fs::read_to_string(&conf).map_err(io_error(format!("read {}", conf.display())))?;
        let include = format!("include_if_exists = '{SETTINGS_FILE}'");
        if !current.contains(&include) {
            fs::write(&conf, format!("{current}\n{include}\n"))
                .map_err(io_error(format!("write {}", conf.display())))?;
        }
        if let Some(user) = self.run_as {
            for path in [&settings_path, &conf] {
                std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
                    .map_err(io_error(format!("hand {} to postgres", path.display())))?;
            }
        }
        Ok(())
    }

    /// The postmaster's pid, from its pid file.
    fn postmaster_pid(&self) -> Option<u32> {
        let pid_file = fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        pid_file.lines().next()?.trim().parse().ok()
    }

    /// Whether a server runs on this data directory: its pid file names a live `postgres`
    /// process (not a pid reused by something else after a reboot).
    fn server_is_running(&self) -> bool {
        self.postmaster_pid().is_some_and(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
        })
    }

    /// Removes the pid and socket lock files a killed server left behind, which would stop the
    /// next start.
    fn remove_stale_lock_files(&self) -> Result<(), EmbeddedError> {
        for stale in [
            self.data_dir().join("postmaster.pid"),
            self.dir.join(format!(".s.PGSQL.{PORT}.lock")),
            self.dir.join(format!(".s.PGSQL.{PORT}")),
        ] {
            match fs::remove_file(&stale) {
                Ok(()) => tracing::warn!(file = %stale.display(), "removed a stale lock file"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(EmbeddedError::Io {
                        action: format!("remove {}", stale.display()),
                        source: e,
                    })
                }
            }
        }
        Ok(())
    }

    /// Runs one of the PostgreSQL binaries (as `postgres` when this process is root).
    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Result<(), EmbeddedError> {
        let mut command = Command::new(self.bin.join(program));
        command
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .env("LC_ALL", "C");
        if let Some(user) = self.run_as {
            command.uid(user.uid).gid(user.gid);
        }
        let output = command
            .output()
            .map_err(io_error(format!("run {program}")))?;
        if output.status.success() {
            return Ok(());
        }
        let mut printed = String::from_utf8_lossy(&output.stdout).into_owned();
        printed.push_str(&String::from_utf8_lossy(&output.stderr));
        if let Ok(log) = fs::read_to_string(self.log_path()) {
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            printed.push_str("\nserver log (last lines):\n");
            printed.push_str(&tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
        Err(EmbeddedError::Command {
            command: format!(
                "{program} {}",
                args.first()
                    .map(|a| a.to_string_lossy())
                    .unwrap_or_default()
            ),
            status: output.status.to_string(),
            output: printed.trim().to_owned(),
        })
    }
}

/// The connection URL of `database` over the socket of the cluster in `dir`.
fn socket_url(dir: &Path, database: &str) -> String {
    // tokio-postgres reads a percent-encoded absolute path in the host part as the unix
    // socket directory (the host part alone: a `?host=` would be tried after it).
    format!(
        "postgres://{USER}@{}/{database}",
        percent_encode(&dir.to_string_lossy())
    )
}

/// Whether a start takes the owner lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// This process owns the cluster: take the lock, or be refused.
    Own,
    /// The test processes' shared cluster (coordinated by the start lock and its watcher).
    Shared,
}

/// The owner lock of a cluster directory: an exclusive `flock` on `<dir>/roughy.lock`, which
/// holds the owner's pid. The kernel releases it when the file is closed or the process dies.
#[derive(Debug)]
struct OwnerLock {
    /// Kept open: closing it releases the lock.
    _file: fs::File,
}

/// How long a refused process waits for the owner to write its pid into the lock file (it
/// writes it right after taking the lock).
const OWNER_PID_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl OwnerLock {
    fn acquire(dir: &Path) -> Result<Self, EmbeddedError> {
        use std::io::{Seek, Write};
        use std::os::unix::fs::OpenOptionsExt;

        let path = dir.join(OWNER_LOCK_FILE);
        // Not truncated on open: the pid in it is the owner's until the lock is ours.
        // Opened close-on-exec (std always does), so no child (pg_ctl, postgres) inherits it.
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_error(format!("open the lock file {}", path.display())))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                return Err(EmbeddedError::InUse {
                    dir: dir.to_owned(),
                    owner: describe_owner(dir, &path),
                    url: socket_url(dir, DATABASE),
                })
            }
            Err(e) => {
                return Err(EmbeddedError::Io {
                    action: format!("lock {}", path.display()),
                    source: e.into(),
                })
            }
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(io_error(format!("write the lock file {}", path.display())))?;
        Ok(Self { _file: file })
    }
}

/// `pid N (name)` of the process holding the owner lock, from the lock file (or, failing
/// that, the PostgreSQL server's pid file).
fn describe_owner(dir: &Path, lock_file: &Path) -> String {
    let read_pid = |path: &Path| -> Option<u32> {
        fs::read_to_string(path)
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    };
    let deadline = std::time::Instant::now() + OWNER_PID_WAIT;
    let owner = loop {
        if let Some(pid) = read_pid(lock_file) {
            break Some(pid);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let name = |pid: u32| {
        fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|comm| format!(" ({})", comm.trim()))
            .unwrap_or_default()
    };
    match owner {
        Some(pid) => format!("pid {pid}{}", name(pid)),
        None => match read_pid(&dir.join("data").join("postmaster.pid")) {
            Some(pid) => format!("another process (its PostgreSQL server is pid {pid})"),
            None => "another process".to_owned(),
        },
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if let Err(e) = self.stop_in_place() {
            tracing::error!(error = %e, "could not stop the embedded PostgreSQL");
        }
    }
}

/// How long a shared cluster outlives its last registered process.
const SHARED_GRACE_SECS: u32 = 5;
/// A start lock older than this was left by a process that died holding it.
const STALE_LOCK: std::time::Duration = std::time::Duration::from_secs(120);

/// A lock between processes: a directory, which only one `mkdir` can create.
struct StartLock(PathBuf);

impl StartLock {
    fn acquire(path: &Path) -> Result<Self, EmbeddedError> {
        let deadline = std::time::Instant::now() + STALE_LOCK * 2;
        loop {
            match fs::create_dir(path) {
                Ok(()) => return Ok(Self(path.to_owned())),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let stale = fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|at| at.elapsed().ok())
                        .is_some_and(|age| age > STALE_LOCK);
                    if stale {
                        tracing::warn!(lock = %path.display(), "removing a stale start lock");
                        let _ = fs::remove_dir(path);
                    } else if std::time::Instant::now() > deadline {
                        return Err(EmbeddedError::Io {
                            action: format!("take the start lock {}", path.display()),
                            source: e,
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => {
                    return Err(EmbeddedError::Io {
                        action: format!("take the start lock {}", path.display()),
                        source: e,
                    })
                }
            }
        }
    }
}

impl Drop for StartLock {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.0);
    }
}

/// Spawns the watcher of a shared cluster unless one runs. Called under the start lock.
fn ensure_shared_watcher(base: &Path) -> Result<(), EmbeddedError> {
    let pid_file = base.join("watcher.pid");
    // The pid must still be our watcher (its command line names this directory), not a
    // process that got the number after a reboot.
    let users_dir = base.join("users").to_string_lossy().into_owned();
    let running = fs::read_to_string(&pid_file)
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        .and_then(|pid| fs::read(format!("/proc/{pid}/cmdline")).ok())
        .is_some_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(&users_dir));
    if running {
        return Ok(());
    }
    let quote = |p: &Path| format!("'{}'", p.to_string_lossy().replace('\'', r"'\''"));
    let (users, lock, pg) = (
        quote(&base.join("users")),
        quote(&base.join("lock")),
        quote(&base.join("pg")),
    );
    // Every second: forget registered processes that are gone; after the grace period with
    // none left, take the start lock, check again, stop the server (SIGINT: fast shutdown)
    // and remove the cluster.
    let script = format!(
        r#"idle=0
alive() {{ a=0; for f in {users}/*; do [ -e "$f" ] || continue; if [ -d "/proc/${{f##*/}}" ]; then a=1; else rm -f "$f"; fi; done; [ "$a" = 1 ]; }}
while :; do
  sleep 1
  if alive; then idle=0; continue; fi
  idle=$((idle+1)); [ "$idle" -lt {SHARED_GRACE_SECS} ] && continue
  mkdir {lock} 2>/dev/null || continue
  if alive; then rmdir {lock}; idle=0; continue; fi
  pm=$(head -n 1 {pg}/data/postmaster.pid 2>/dev/null)
  if [ -n "$pm" ]; then kill -INT "$pm" 2>/dev/null; while [ -d "/proc/$pm" ]; do sleep 0.1; done; fi
  rm -rf {pg} {users}
  rmdir {lock}
  exit 0
done"#
    );
    let watcher = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io_error("spawn the shared cluster's watcher".into()))?;
    fs::write(&pid_file, watcher.id().to_string())
        .map_err(io_error(format!("write {}", pid_file.display())))
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`: the first on `PATH`, else the
/// newest `/usr/lib/postgresql/<version>/bin` (Debian keeps them off `PATH`).
fn find_binaries() -> Option<PathBuf> {
    let has_all = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    if let Some(dir) = on_path.into_iter().find(|d| has_all(d)) {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_all(bin))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Whether this process runs as root (effective uid 0), read from `/proc/self/status`.
fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let uids = status.lines().find(|l| l.starts_with("Uid:"))?.to_owned();
            uids.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// The `postgres` user from `/etc/passwd`.
fn postgres_user() -> Result<Option<RunAs>, EmbeddedError> {
    let passwd = fs::read_to_string("/etc/passwd").map_err(io_error("read /etc/passwd".into()))?;
    Ok(passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            ["postgres", _, uid, gid, ..] => Some(RunAs {
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
            }),
            _ => None,
        }
    }))
}

/// Gives `dir` to the server's user, and lets that user reach it: every ancestor must be
/// traversable by others (a 0700 temporary directory is not).
fn hand_over(dir: &Path, user: RunAs) -> Result<(), EmbeddedError> {
    std::os::unix::fs::chown(dir, Some(user.uid), Some(user.gid))
        .map_err(io_error(format!("hand {} to postgres", dir.display())))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(io_error(format!("restrict {}", dir.display())))?;
    for ancestor in dir.ancestors().skip(1) {
        let meta =
            fs::metadata(ancestor).map_err(io_error(format!("inspect {}", ancestor.display())))?;
        let mode = meta.permissions().mode();
        if mode & 0o001 == 0 {
            tracing::warn!(dir = %ancestor.display(), "letting the postgres user traverse the directory (o+x)");
            fs::set_permissions(ancestor, fs::Permissions::from_mode(mode | 0o001))
                .map_err(io_error(format!("open {} to postgres", ancestor.display())))?;
        }
    }
    Ok(())
}

/// Percent-encodes everything but the unreserved characters of RFC 3986.
fn percent_encode(raw: &str) -> String {
    let mut encoded = String::with_capacity(raw.len() * 3);
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Adds what was being done to an I/O error.
fn io_error(action: String) -> impl FnOnce(io::Error) -> EmbeddedError {
    move |source| EmbeddedError::Io { action, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_directories_are_percent_encoded_into_the_host() {
        assert_eq!(percent_encode("/tmp/a b/c"), "%2Ftmp%2Fa%20b%2Fc");
        let cluster = EmbeddedPostgres {
            dir: PathBuf::from("/var/roughy/pg"),
            bin: PathBuf::new(),
            run_as: None,
            running: false,
            _owner: None,
        };
        assert_eq!(
            cluster.url(),
            "postgres://roughy@%2Fvar%2Froughy%2Fpg/roughy"
        );
    }
}
