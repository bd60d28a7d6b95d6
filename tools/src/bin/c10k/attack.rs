//! `c10k attack URL`: the resource-exhaustion suite against a server of one's own.

use std::net::IpAddr;
use std::time::Duration;

use c10k_tools::attack::{self, App, Attack, Limits, Options};

use crate::serve::parse_duration;

/// Options of `c10k attack`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The server's URL: ws://, or wss:// (with --tls-ca or --insecure).
    url: String,
    /// An attack to run (repeat for several; all by default): ping-flood, deflate-held,
    /// slow-reader, unfinished-message, fragment-dribble, pending-handshakes, slowloris,
    /// subscribe-flood, close-flood, tls-hello-flood, address-flood, huge-frame, utf8-dribble,
    /// header-flood.
    #[arg(long = "attack", value_name = "NAME", value_parser = parse_attack)]
    attacks: Vec<Attack>,
    /// How long each attack lasts.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// How long the bystanders measure before each attack.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    baseline: Duration,
    /// After each attack, the longest wait for the server's memory to come back.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    settle: Duration,
    /// The server's process id: its memory (with its children's) and CPU time are measured, and
    /// its disappearance is a crash.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Echoing connections that measure round trips before and during each attack.
    #[arg(long, default_value_t = 100)]
    bystanders: usize,
    /// Connect the bystanders to this server instead of the one under attack (a control run:
    /// what the attack costs them through the machine alone).
    #[arg(long, value_name = "URL")]
    bystander_url: Option<String>,
    /// Each attack's size: connections, sockets or topics (each attack has its own default).
    #[arg(long)]
    scale: Option<usize>,
    /// What the server runs (echo, pubsub, chat); by default chat for a /chat/ path, else echo.
    #[arg(long, value_parser = parse_app)]
    app: Option<App>,
    /// The address to attack from (e.g. 127.0.0.2); the bystanders connect from the default one.
    #[arg(long)]
    source: Option<IpAddr>,
    /// Fail an attack that makes the server's memory grow by more than this (e.g. 64MiB).
    #[arg(long, value_name = "BYTES", value_parser = attack::parse_bytes)]
    max_growth: Option<u64>,
    /// Fail an attack during which the bystanders' p99 exceeds R times its baseline (a
    /// baseline under 1 ms counts as 1 ms).
    #[arg(long, value_name = "R")]
    max_latency_ratio: Option<f64>,
    /// Print one JSON object (an object per attack, and a summary) instead of the table.
    #[arg(long)]
    json: bool,
    #[cfg(feature = "tls")]
    #[command(flatten)]
    tls: crate::tls_client::TlsClientArgs,
}

fn parse_attack(s: &str) -> Result<Attack, String> {
    Attack::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = Attack::ALL.iter().map(|a| a.name()).collect();
        format!("no attack {s:?}; the attacks are {}", names.join(", "))
    })
}

fn parse_app(s: &str) -> Result<App, String> {
    match s {
        "echo" => Ok(App::Echo),
        "pubsub" => Ok(App::PubSub),
        "chat" => Ok(App::Chat),
        _ => Err(format!("no application {s:?} (echo, pubsub, chat)")),
    }
}

pub fn run(args: Args) -> Result<(), String> {
    let path = c10k::client::WsUrl::parse(&args.url)
        .map_err(|e| e.to_string())?
        .target;
    let opts = Options {
        attacks: args.attacks.clone(),
        duration: args.duration,
        baseline: args.baseline,
        settle: args.settle,
        server_pid: args.server_pid,
        bystanders: args.bystanders,
        bystander_url: args.bystander_url.clone(),
        scale: args.scale,
        app: args.app.unwrap_or_else(|| App::guess(&path)),
        source: args.source,
        limits: Limits {
            max_growth: args.max_growth,
            max_latency_ratio: args.max_latency_ratio,
        },
        #[cfg(feature = "tls")]
        tls: args.tls.config_for(&args.url)?,
        url: args.url,
    };
    let json = args.json;
    let suite = attack::run(&opts, |r| {
        log::info!("{}: {} ({})", r.attack, r.verdict(), r.answer());
    })?;
    if json {
        println!("{}", suite.json());
    } else {
        print!("{}", suite.table());
    }
    if suite.ok() {
        Ok(())
    } else {
        let failed: Vec<&str> = suite
            .reports
            .iter()
            .filter(|r| !r.failures.is_empty())
            .map(|r| r.attack)
            .collect();
        Err(format!("the server did not withstand: {}", failed.join(", ")))
    }
}
