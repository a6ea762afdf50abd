//! The service under test: the release binary as a child process (the benchmark), or the
//! same `Application` in this process (the smoke test). Either way it is configured only by
//! the environment variables the binary reads and driven only over HTTP, so what the
//! service keeps its records in (memory today, an embedded PostgreSQL tomorrow) does not
//! matter here.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

/// How long start-up may take (an embedded database may have to initialise its cluster).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(180);

/// How long a graceful stop may take before the process is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The operator token the service is started with.
pub const ADMIN_TOKEN: &str = "roughy-bench-admin-token";

/// How to run the service.
#[derive(Clone, Debug)]
pub enum ServerMode {
    /// This `roughy-server` binary as a child process.
    Binary(PathBuf),
    /// `roughy_server::Application` on this process's runtime.
    InProcess,
}

/// A running service.
#[derive(Debug)]
pub struct Service {
    base: String,
    pid: u32,
    running: Running,
}

#[derive(Debug)]
enum Running {
    Child {
        child: Box<Child>,
        log: PathBuf,
    },
    InProcess {
        handle: actix_web::dev::ServerHandle,
        /// `Application::run`: ends once the server and the workers have stopped.
        run: tokio::task::JoinHandle<()>,
    },
}

impl Service {
    /// Starts the service on `data_dir` and a free loopback port, and waits until `/readyz`
    /// answers 200.
    ///
    /// # Errors
    /// When it cannot be started or does not become ready.
    pub async fn start(mode: &ServerMode, data_dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(mode, data_dir, &[]).await
    }

    /// [`Service::start`] with these variables set too (the S3 rows' storage settings).
    ///
    /// # Errors
    /// When it cannot be started or does not become ready.
    pub async fn start_with(
        mode: &ServerMode,
        data_dir: &Path,
        env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
        let addr = listener.local_addr().context("reading the free port")?;
        let base = format!("http://{addr}");
        let mut service = match mode {
            ServerMode::Binary(binary) => {
                // The child binds the port itself; the race with other processes for a
                // just-freed port is one this benchmark can live with.
                drop(listener);
                let log = data_dir.join("server.log");
                // Appended to: every round's server logs to the same file.
                let log_file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .with_context(|| format!("opening {}", log.display()))?;
                let mut command = Command::new(binary);
                // The embedded defaults: none of the caller's configuration leaks in.
                for (name, _) in std::env::vars_os() {
                    let name_str = name.to_string_lossy();
                    if name_str.starts_with("ROUGHY_") || name_str == "DATABASE_URL" {
                        command.env_remove(&name);
                    }
                }
                let child = command
                    .envs(env.iter().map(|(k, v)| (k, v)))
                    .env("ROUGHY_DATA_DIR", data_dir)
                    .env("ROUGHY_BIND", addr.to_string())
                    .env("ROUGHY_ADMIN_TOKEN", ADMIN_TOKEN)
                    .stdin(Stdio::null())
                    .stdout(log_file.try_clone().context("duplicating the log file")?)
                    .stderr(log_file)
                    .kill_on_drop(true)
                    .spawn()
                    .with_context(|| format!("starting {}", binary.display()))?;
                let pid = child.id().context("the server exited at once")?;
                Self {
                    base,
                    pid,
                    running: Running::Child {
                        child: Box::new(child),
                        log,
                    },
                }
            }
            ServerMode::InProcess => {
                let dir = data_dir.to_string_lossy().into_owned();
                let config = roughy_server::Config::from_lookup(|k| match k {
                    "ROUGHY_DATA_DIR" => Some(dir.clone()),
                    "ROUGHY_ADMIN_TOKEN" => Some(ADMIN_TOKEN.to_owned()),
                    _ => env
                        .iter()
                        .find(|(name, _)| name == k)
                        .map(|(_, v)| v.clone()),
                })?;
                let overrides = roughy_server::Overrides {
                    listener: Some(listener),
                    ..roughy_server::Overrides::default()
                };
                let app = roughy_server::Application::build(config, overrides).await?;
                let handle = app.server_handle();
                let run = tokio::spawn(async move {
                    if let Err(e) = app.run().await {
                        eprintln!("in-process server failed: {e:#}");
                    }
                });
                Self {
                    base,
                    pid: std::process::id(),
                    running: Running::InProcess { handle, run },
                }
            }
        };
        service.wait_ready().await?;
        Ok(service)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The process serving (this process when in-process).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the service has a process of its own (so its memory is its own).
    pub fn is_child(&self) -> bool {
        matches!(self.running, Running::Child { .. })
    }

    /// For an error message: whether the child has exited (with its status) and the end of
    /// its log; empty in-process.
    pub fn exit_report(&mut self) -> String {
        match &mut self.running {
            Running::Child { child, log } => {
                let status = match child.try_wait() {
                    Ok(Some(status)) => format!("the server has exited ({status})"),
                    Ok(None) => "the server is still running".to_owned(),
                    Err(e) => format!("the server's state is unknown: {e}"),
                };
                format!("{status}\n{}", log_tail(log))
            }
            Running::InProcess { .. } => String::new(),
        }
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let url = format!("{}/readyz", self.base);
        let started = Instant::now();
        loop {
            if let Running::Child { child, log } = &mut self.running {
                // A child that exited will never answer.
                if let Some(status) = child.try_wait().context("polling the server")? {
                    bail!(
                        "the server exited during start-up ({status}):\n{}",
                        log_tail(log)
                    );
                }
            }
            match client.get(&url).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                _ if started.elapsed() > STARTUP_TIMEOUT => {
                    let log = match &self.running {
                        Running::Child { log, .. } => log_tail(log),
                        Running::InProcess { .. } => String::new(),
                    };
                    bail!("the server was not ready after {STARTUP_TIMEOUT:?}\n{log}");
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Stops the service gracefully (SIGTERM, then SIGKILL after a grace period).
    ///
    /// # Errors
    /// When the child cannot be signalled or waited for.
    pub async fn stop(self) -> anyhow::Result<()> {
        match self.running {
            Running::InProcess { handle, run } => {
                handle.stop(true).await;
                // Whatever the application stops after its server (workers, its database).
                tokio::time::timeout(STOP_TIMEOUT, run)
                    .await
                    .context("the in-process server did not stop")?
                    .context("the in-process server task failed")
            }
            Running::Child { mut child, log } => {
                // SIGTERM through kill(1): a graceful stop lets the service shut down what it
                // started itself; no unsafe code needed for the signal.
                let signalled = std::process::Command::new("kill")
                    .args(["-TERM", &self.pid.to_string()])
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                if signalled {
                    if let Ok(status) = tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
                        let status = status.context("waiting for the server")?;
                        if !status.success() {
                            eprintln!("note: the server exited with {status}\n{}", log_tail(&log));
                        }
                        return Ok(());
                    }
                    eprintln!("note: the server did not stop within {STOP_TIMEOUT:?}; killing it");
                }
                child.kill().await.context("killing the server")
            }
        }
    }
}

/// The end of a child process's log (the server's, a peer's), for error messages.
pub(crate) fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(20);
    format!(
        "--- {} (last lines) ---\n{}",
        log.display(),
        lines[from..].join("\n")
    )
}

/// A field of `/proc/<pid>/status` in bytes (`VmHWM`, `VmRSS`, …).
pub fn proc_status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        let kib: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
        Some(kib * 1024)
    })
}

/// Samples a process's resident set every 10 ms on its own thread; [`RssSampler::stop`]
/// returns the largest sample.
#[derive(Debug)]
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<u64>,
}

impl RssSampler {
    /// Starts sampling `pid`.
    pub fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(proc_status_bytes(pid, "VmRSS").unwrap_or(0));
                thread::sleep(Duration::from_millis(10));
            }
            peak.max(proc_status_bytes(pid, "VmRSS").unwrap_or(0))
        });
        Self { stop, thread }
    }

    /// Stops sampling; the peak resident set seen, in bytes.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted after its closing parenthesis,
    // where field 3 (state) comes first; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks_per_second())
}

/// `getconf CLK_TCK`: the unit of `/proc/<pid>/stat` times (100 on Linux in practice).
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|t: &f64| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// The CPU time the server and this process (the client) spend during a measurement, next
/// to the wall time: on a small machine it shows which side, if any, is out of CPU.
#[derive(Debug)]
pub struct CpuMeter {
    pid: u32,
    server: f64,
    client: f64,
    started: Instant,
}

impl CpuMeter {
    /// Starts measuring `pid` (the server) and this process.
    pub fn start(pid: u32) -> Self {
        Self {
            pid,
            server: cpu_seconds(pid).unwrap_or(0.0),
            client: cpu_seconds(std::process::id()).unwrap_or(0.0),
            started: Instant::now(),
        }
    }

    /// Stops: "server CPU 1.23 s, client CPU 0.45 s, wall 0.98 s".
    pub fn stop(self) -> String {
        let wall = self.started.elapsed().as_secs_f64();
        let server = cpu_seconds(self.pid).unwrap_or(0.0) - self.server;
        let client = cpu_seconds(std::process::id()).unwrap_or(0.0) - self.client;
        if self.pid == std::process::id() {
            format!("CPU {server:.2} s in-process, wall {wall:.2} s")
        } else {
            format!("server CPU {server:.2} s, client CPU {client:.2} s, wall {wall:.2} s")
        }
    }
}
