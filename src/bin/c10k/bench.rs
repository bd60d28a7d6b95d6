//! `c10k bench`: the load generator.

use std::time::Duration;

use c10k::loadgen::{self, Options, Scenario};
use clap::ValueEnum;

use crate::serve::parse_duration;

/// Options of `c10k bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to measure.
    #[arg(value_enum)]
    scenario: Which,
    /// Server URL.
    #[arg(long, default_value = "ws://127.0.0.1:9001/")]
    url: String,
    /// Number of connections (testecho: clients).
    #[arg(long, short = 'c')]
    connections: Option<usize>,
    /// Message payload in bytes.
    #[arg(long, default_value_t = 20)]
    payload: usize,
    /// Send binary messages (text by default).
    #[arg(long)]
    binary: bool,
    /// Messages in flight per connection (echo).
    #[arg(long, default_value_t = 1)]
    in_flight: usize,
    /// Measured window (echo, rate), or how long to hold the connections (hold).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Warm-up before the window (echo, rate).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Total messages per second (rate).
    #[arg(long, default_value_t = 10_000.0)]
    rate: f64,
    /// Load-generating threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Source addresses to connect from, e.g. 127.0.0.2,127.0.0.3 (more ephemeral ports).
    #[arg(long = "source")]
    sources: Vec<String>,
    /// The server's process id: report its CPU per message and its memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// testecho: time over which the clients connect.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    ramp: Duration,
    /// testecho: wait before each message.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    delay: Duration,
    /// testecho: messages per client.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Time allowed to open every connection.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    /// Closed loop: every connection keeps --in-flight messages in flight.
    Echo,
    /// Open loop at --rate messages per second in total; latency corrected for coordinated omission.
    Rate,
    /// Open connections as fast as allowed: handshakes/s and handshake latency.
    Connect,
    /// Open connections and hold them idle for --duration.
    Hold,
    /// The classic C10k scenario: clients on a --ramp, --rounds messages each after --delay.
    Testecho,
}

pub fn run(args: Args) -> Result<(), String> {
    let scenario = match args.scenario {
        Which::Echo => Scenario::Echo,
        Which::Rate => Scenario::Rate,
        Which::Connect => Scenario::Connect,
        Which::Hold => Scenario::Hold,
        Which::Testecho => Scenario::TestEcho,
    };
    let opts = Options {
        scenario,
        url: args.url,
        connections: args.connections.unwrap_or(if scenario == Scenario::TestEcho {
            10_000
        } else {
            100
        }),
        payload: args.payload,
        binary: args.binary,
        in_flight: args.in_flight,
        duration: args.duration,
        warmup: args.warmup,
        rate: args.rate,
        threads: args.threads,
        sources: loadgen::parse_sources(&args.sources)?,
        server_pid: args.server_pid,
        ramp: args.ramp,
        delay: args.delay,
        rounds: args.rounds,
        connect_timeout: args.connect_timeout,
    };
    let report = loadgen::run(&opts)?;
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    if report.ok() {
        Ok(())
    } else {
        Err(format!(
            "{} errors, {} wrong echoes",
            report.errors, report.wrong_echoes
        ))
    }
}
