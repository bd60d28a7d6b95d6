//! The `c10k` command line: `serve` runs a server (or a supervisor of worker processes), `bench`
//! the load generator, `check` the conformance suite, `fuzz` fuzzes a server's frame handling,
//! `attack` runs the resource-exhaustion suite against a server.

mod attack;
mod bench;
mod check;
mod check_serve;
mod fuzz;
mod logger;
mod restart;
mod serve;
#[cfg(feature = "tls")]
mod serve_tls;
mod supervisor;
#[cfg(feature = "tls")]
mod tls_client;

use clap::{Parser, Subcommand};

/// A WebSocket engine built to hold tens of thousands of connections per core.
#[derive(Debug, Parser)]
#[command(name = "c10k", version, about)]
struct Cli {
    /// More log output (-v: debug, -vv: trace). The default level logs no line per message.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a WebSocket server (the echo server by default).
    Serve(Box<serve::Args>),
    /// Generate load against a WebSocket echo server and report what it measured.
    Bench(bench::Args),
    /// Run the RFC 6455 conformance suite against a WebSocket echo server (or, with --serve,
    /// serve it to WebSocket clients and judge them).
    Check(check::Args),
    /// Fuzz a WebSocket echo server with generated frame sequences, judged by the protocol core.
    Fuzz(fuzz::Args),
    /// Attack a server of your own with resource-exhaustion attacks, measuring what each costs it
    /// and its other clients.
    Attack(attack::Args),
}

fn main() {
    let cli = Cli::parse();
    logger::init(if cli.quiet {
        log::LevelFilter::Warn
    } else {
        match cli.verbose {
            0 => log::LevelFilter::Info,
            1 => log::LevelFilter::Debug,
            _ => log::LevelFilter::Trace,
        }
    });
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Bench(args) => bench::run(args),
        Command::Check(args) => check::run(args),
        Command::Fuzz(args) => fuzz::run(args),
        Command::Attack(args) => attack::run(args),
    };
    if let Err(e) = result {
        eprintln!("c10k: {e}");
        std::process::exit(1);
    }
}
