//! `roughy-bench`: `make bench`. See the library documentation for what it measures.
//!
//! ```text
//! roughy-bench [--smoke] [--runs N] [--server PATH | --in-process] [--out PATH | --no-out]
//!              [--data-parent DIR] [--keep-data] [--no-warm-up]
//!              [--only limits,one,chunked,huge,concurrent,small,s3] [--s3 | --no-s3]
//! ```
//!
//! - default: the full benchmark against the release `roughy-server`, results to
//!   `bench/RESULTS.md`;
//! - `--smoke`: every scenario once with tiny sizes against an in-process service, nothing
//!   written; exits 0 iff every upload was stored exactly as sent;
//! - `--only`: some scenarios (figures not measured show as NaN); for profiling;
//! - `--s3` / `--no-s3`: the S3 rows, which run by default when `ROUGHY_TEST_S3_ENDPOINT` is
//!   set (under `scripts/s3s-fs run`); asked for without it, the run fails.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use roughy_bench::service::ServerMode;
use roughy_bench::{find_server_binary, run, Options, Scenario};

const USAGE: &str = "usage: roughy-bench [--smoke] [--runs N] [--server PATH | --in-process] \
                     [--out PATH | --no-out] [--data-parent DIR] [--keep-data] \
                     [--no-warm-up] [--only SCENARIO,...] [--s3 | --no-s3]";

const SCENARIOS: &str = "limits, one, chunked, huge, concurrent, small, s3";

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1).collect()) {
        Ok(Some(options)) => options,
        Ok(None) => {
            eprintln!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("roughy-bench: {e:#}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options).await {
        Ok(report) => {
            if !options.smoke && !report.targets_met() {
                eprintln!("note: some targets are not met (see the Met column)");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("roughy-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The options from the command line; `None` for `--help`.
fn parse(args: Vec<String>) -> anyhow::Result<Option<Options>> {
    let smoke = args.iter().any(|a| a == "--smoke");
    let mut server = None;
    let mut in_process = false;
    let mut runs = None;
    let mut out: Option<Option<PathBuf>> = None;
    let mut data_parent = None;
    let mut only = None;
    let mut keep_data = false;
    let mut no_warm_up = false;
    let mut s3 = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--smoke" => {}
            "-h" | "--help" => return Ok(None),
            "--runs" => {
                let n: usize = value()?.parse().context("--runs")?;
                if n == 0 {
                    bail!("--runs must be at least 1");
                }
                runs = Some(n);
            }
            "--server" => server = Some(PathBuf::from(value()?)),
            "--in-process" => in_process = true,
            "--out" => out = Some(Some(PathBuf::from(value()?))),
            "--no-out" => out = Some(None),
            "--data-parent" => data_parent = Some(PathBuf::from(value()?)),
            "--keep-data" => keep_data = true,
            "--no-warm-up" => no_warm_up = true,
            "--s3" => s3 = Some(true),
            "--no-s3" => s3 = Some(false),
            "--only" => {
                let list = value()?;
                let parsed: Option<Vec<Scenario>> = list.split(',').map(Scenario::parse).collect();
                only = Some(parsed.with_context(|| {
                    format!("--only {list:?}: expected a comma-separated list of {SCENARIOS}")
                })?);
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    let mut options = if smoke {
        Options::smoke()
    } else {
        // Located only when needed: smoke runs need no binary.
        let binary = match &server {
            Some(path) => path.clone(),
            None if in_process => PathBuf::new(),
            None => find_server_binary()?,
        };
        Options::full(binary)
    };
    if let Some(path) = server {
        options.server = ServerMode::Binary(path);
    } else if in_process {
        options.server = ServerMode::InProcess;
    }
    if let Some(n) = runs {
        options.runs = n;
    }
    if let Some(out) = out {
        options.out = out;
    }
    options.data_parent = data_parent;
    options.keep_data = keep_data;
    if no_warm_up {
        options.warm_up = 0;
    }
    if let Some(only) = only {
        options.scenarios = only;
    }
    match s3 {
        Some(true) if !options.runs_scenario(Scenario::S3) => {
            options.scenarios.push(Scenario::S3);
        }
        Some(false) => options.scenarios.retain(|s| *s != Scenario::S3),
        _ => {}
    }
    Ok(Some(options))
}
