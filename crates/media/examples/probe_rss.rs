//! Probes one file the way the service does and reports the process's peak memory.
//!
//! ```text
//! cargo run --release -p roughy-media --example probe_rss -- <file> [symphonia|ffprobe]
//! ```
//!
//! The file is sniffed from its first 64 bytes, then probed through a plain file reader (what
//! the local blob store hands over). Prints the verdict, the wall time and `VmHWM` (the peak
//! resident set size, from `/proc/self/status`) before and after probing: the difference is
//! what probing needed on top of the runtime.

// A command-line tool: its report is its output.
#![allow(clippy::print_stdout, reason = "the figures are the output")]

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::process::ExitCode;
use std::time::Instant;

use roughy_app::ports::BlobReader;
use roughy_media::{inspector_from_name, sniff};

/// A field of `/proc/self/status` in KiB (`VmHWM`, `VmRSS`), when the kernel reports it.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `KiB` as a readable MiB figure.
fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "unknown".to_owned(),
        |k| format!("{:.1} MiB", k as f64 / 1024.0),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(path), probe_name) = (args.next(), args.next()) else {
        eprintln!("usage: probe_rss <file> [symphonia|ffprobe]");
        return ExitCode::from(2);
    };
    let probe_name = probe_name.unwrap_or_else(|| "symphonia".to_owned());
    let Some(inspector) = inspector_from_name(&probe_name) else {
        eprintln!("unknown probe {probe_name:?}: use symphonia or ffprobe");
        return ExitCode::from(2);
    };
    let opened = File::open(&path).and_then(|mut file| {
        let mut head = Vec::with_capacity(64);
        file.by_ref().take(64).read_to_end(&mut head)?;
        file.seek(SeekFrom::Start(0))?;
        Ok((file, head))
    });
    let (reader, head) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let size = reader.byte_len().unwrap_or(0);
    let Some(format) = inspector.sniff(&head).or_else(|| sniff(&head)) else {
        println!("{path}: rejected at the first chunk (not a supported format)");
        return ExitCode::FAILURE;
    };

    let before = status_kib("VmHWM");
    let started = Instant::now();
    let result = inspector.probe(Box::new(reader), format).await;
    let elapsed = started.elapsed();
    let after = status_kib("VmHWM");

    println!("file:      {path} ({size} bytes, sniffed {format:?}, probe {probe_name})");
    match &result {
        Ok(info) => println!(
            "result:    {:?}, {}.{:03} s",
            info.format,
            info.duration.millis() / 1000,
            info.duration.millis() % 1000
        ),
        Err(e) => println!("result:    {e}"),
    }
    println!("time:      {:.3} s", elapsed.as_secs_f64());
    println!(
        "VmHWM:     {} before probing, {} after",
        mib(before),
        mib(after)
    );
    if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
