//! `roughy-bench`: `make bench`. See the library documentation for what it measures.
//!
//! ```text
//! roughy-bench [--smoke] [--runs N] [--server PATH | --in-process] [--out PATH | --no-out]
//!              [--data-parent DIR] [--keep-data] [--no-warm-up]
//!              [--only limits,one,chunked,huge,concurrent,small,s3] [--s3 | --no-s3]
//!              [--peers]
//! ```
//!
//! - default: the full benchmark against the release `roughy-server`, results to
//!   `bench/RESULTS.md`;
//! - `--smoke`: every scenario once with tiny sizes against an in-process service, nothing
//!   written; exits 0 iff every upload was stored exactly as sent;
//! - `--only`: some scenarios (figures not measured show as NaN); for profiling;
//! - `--s3` / `--no-s3`: the S3 rows, which run by default when `ROUGHY_TEST_S3_ENDPOINT` is
//!   set (under `scripts/s3s-fs run`); asked for without it, the run fails;
//! - `--peers` (`make bench PEERS=1`): also install (`scripts/bench-peers`, into the tools
//!   cache) and measure other TUS servers, @tus/server and rustus, with the same client.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use roughy_bench::service::ServerMode;
use roughy_bench::{find_server_binary, run, Options, Scenario};

const SCENARIOS: &str = "limits, one, chunked, huge, concurrent, small, s3";

/// Upload throughput, latency and memory of roughy-server against this machine's own limits.
#[derive(Debug, Parser)]
#[command(name = "roughy-bench")]
struct Args {
    /// Every scenario once with tiny sizes against an in-process service, nothing written;
    /// exits 0 iff every upload was stored exactly as sent.
    #[arg(long)]
    smoke: bool,
    /// Rounds; each figure is the median over them.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    runs: Option<u16>,
    /// The roughy-server binary to measure (default: the release build of this workspace).
    #[arg(long, conflicts_with = "in_process")]
    server: Option<PathBuf>,
    /// Run the service inside this process instead of as a binary.
    #[arg(long)]
    in_process: bool,
    /// Where to write the results (default: bench/RESULTS.md).
    #[arg(long, conflicts_with = "no_out")]
    out: Option<PathBuf>,
    /// Only print the results.
    #[arg(long)]
    no_out: bool,
    /// Where the service's temporary data directory is created (the disk measured).
    #[arg(long)]
    data_parent: Option<PathBuf>,
    /// Keep the data directory (with the server's log) instead of deleting it.
    #[arg(long)]
    keep_data: bool,
    /// Skip the warm-up write before the first round.
    #[arg(long)]
    no_warm_up: bool,
    /// Some scenarios only (figures not measured show as NaN), e.g. for profiling.
    #[arg(long, value_delimiter = ',', value_parser = scenario, value_name = "SCENARIO,...")]
    only: Option<Vec<Scenario>>,
    /// The S3 rows, which run by default when ROUGHY_TEST_S3_ENDPOINT is set (under
    /// `scripts/s3s-fs run`); asked for without it, the run fails.
    #[arg(long, conflicts_with = "no_s3")]
    s3: bool,
    /// Leave the S3 rows out.
    #[arg(long)]
    no_s3: bool,
    /// Also install (scripts/bench-peers, into the tools cache, once) and measure other TUS
    /// servers with the same client and files: @tus/server + @tus/file-store, rustus. A peer
    /// that cannot be built or started is reported, not fatal.
    #[arg(long)]
    peers: bool,
}

fn scenario(name: &str) -> Result<Scenario, String> {
    Scenario::parse(name).ok_or_else(|| format!("expected one of {SCENARIOS}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match options(Args::parse()) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("roughy-bench: {e:#}");
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

/// The benchmark's options from the command line's.
fn options(args: Args) -> anyhow::Result<Options> {
    let mut options = if args.smoke {
        Options::smoke()
    } else {
        // Located only when needed: smoke runs need no binary.
        let binary = match &args.server {
            Some(path) => path.clone(),
            None if args.in_process => PathBuf::new(),
            None => find_server_binary()?,
        };
        Options::full(binary)
    };
    if let Some(path) = args.server {
        options.server = ServerMode::Binary(path);
    } else if args.in_process {
        options.server = ServerMode::InProcess;
    }
    if let Some(n) = args.runs {
        options.runs = usize::from(n);
    }
    if args.no_out {
        options.out = None;
    } else if let Some(out) = args.out {
        options.out = Some(out);
    }
    options.data_parent = args.data_parent;
    options.keep_data = args.keep_data;
    options.peers = args.peers;
    if args.no_warm_up {
        options.warm_up = 0;
    }
    if let Some(only) = args.only {
        options.scenarios = only;
    }
    if args.s3 && !options.runs_scenario(Scenario::S3) {
        options.scenarios.push(Scenario::S3);
    } else if args.no_s3 {
        options.scenarios.retain(|s| *s != Scenario::S3);
    }
    Ok(options)
}
