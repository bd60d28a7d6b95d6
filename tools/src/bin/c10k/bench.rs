//! `c10k bench`: the load generator, in this process or spread over several (`--processes`).

use std::io::{BufRead, Write};
use std::process::Command;
use std::time::Duration;

use c10k_tools::loadgen::{self, Options, Scenario};
use clap::ValueEnum;

use crate::serve::parse_duration;

/// Options of `c10k bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to measure.
    #[arg(value_enum)]
    scenario: Which,
    /// Server URL: ws://, or wss:// (TLS; with --tls-ca or --insecure).
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
    /// testecho: wait before each message (default 60s); slowloris: wait between two bytes
    /// (default 1s).
    #[arg(long, value_parser = parse_duration)]
    delay: Option<Duration>,
    /// testecho: messages per client.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Time allowed to open every connection.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// The most connections of one load thread waiting for their connect or handshake at once
    /// (connect: the concurrency of the handshakes).
    #[arg(long, default_value_t = loadgen::DEFAULT_MAX_PENDING as u64,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_pending: u64,
    /// hold: at the end, every connection sends one message and must get its echo.
    #[arg(long)]
    final_echo: bool,
    /// hold: every connection exchanges one message as soon as it is open, before the server's
    /// memory is read.
    #[arg(long)]
    first_echo: bool,
    /// hold: end with the server's drain: after the final echoes, send the server (--server-pid)
    /// SIGTERM; every connection must get 1001 Going Away and be closed by the server.
    #[arg(long)]
    server_drain: bool,
    /// Offer permessage-deflate (no context takeover either way) and send messages compressed;
    /// a connection the server does not agree to compress fails.
    #[arg(long)]
    deflate: bool,
    /// fanout: connect the publisher to this URL instead (another node of a cluster): the latency
    /// is then that of a publish crossing nodes.
    #[arg(long)]
    publish_url: Option<String>,
    /// What the messages contain: a letter pattern, or JSON-like text (a realistic ratio for
    /// --deflate).
    #[arg(long, value_enum, default_value_t = Kind::Pattern)]
    payload_kind: Kind,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write the run's figures as a page people look at: a self-contained HTML page, or one
    /// SVG picture if FILE ends in .svg (latency percentile curve, messages/s and CPU over the
    /// window, the parameters).
    #[arg(long, value_name = "FILE")]
    report: Option<std::path::PathBuf>,
    /// fanout: how the server is asked to subscribe and publish.
    #[arg(long, value_enum, default_value_t = Protocol::Topics)]
    fanout_protocol: Protocol,
    /// fanout: the topic to subscribe and publish to (c10k's pubsub protocols).
    #[arg(long, default_value = "fanout")]
    topic: String,
    /// Spread the run over this many processes (connections split evenly; without --source,
    /// process i connects from 127.0.0.(2+i)), for more connections than one process may open.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=253))]
    processes: u32,
    /// Internal (one process of a --processes run): print `connected K` once every connection
    /// is open, then wait for a line on stdin before going on.
    #[arg(long, hide = true)]
    coordinated: bool,
    /// Internal: include the recorded histogram buckets in the JSON report.
    #[arg(long, hide = true)]
    json_histograms: bool,
    #[cfg(feature = "tls")]
    #[command(flatten)]
    tls: crate::tls_client::TlsClientArgs,
    /// wss: resume TLS sessions (each load thread keeps the tickets its connections got). By
    /// default every connection makes a full TLS handshake.
    #[cfg(feature = "tls")]
    #[arg(long)]
    tls_resume: bool,
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
    /// One publisher at --rate messages/s, --connections - 1 subscribers of one topic:
    /// deliveries/s and publish-to-delivery latency.
    Fanout,
    /// Connections that send a never-ending handshake request one byte per --delay; each must
    /// be answered 408 and closed at the server's handshake timeout, and is then replaced.
    Slowloris,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// The letters a to z over and over.
    Pattern,
    /// JSON-like records.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    /// c10k's pubsub mode (`c10k serve --mode pubsub`): `sub fanout`, `pub fanout PAYLOAD`.
    Topics,
    /// A broadcast server that relays every `pub:`-prefixed message to every client.
    Prefix,
    /// c10k's pubsub mode with history on, subscriptions that follow offsets: `sub fanout @`;
    /// deliveries `OFFSET fanout PAYLOAD`.
    Offsets,
}

pub fn run(args: Args) -> Result<(), String> {
    let scenario = match args.scenario {
        Which::Echo => Scenario::Echo,
        Which::Rate => Scenario::Rate,
        Which::Connect => Scenario::Connect,
        Which::Hold => Scenario::Hold,
        Which::Testecho => Scenario::TestEcho,
        Which::Fanout => Scenario::Fanout,
        Which::Slowloris => Scenario::Slowloris,
    };
    let trust = trust_args(&args);
    #[cfg(feature = "tls")]
    let tls = {
        let main = args.tls.config_for(&args.url)?;
        match main {
            Some(c) => Some(c),
            None => match args.publish_url.as_deref() {
                Some(u) => args.tls.config_for(u)?,
                None => None,
            },
        }
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
        delay: args.delay.unwrap_or(if scenario == Scenario::Slowloris {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(60)
        }),
        rounds: args.rounds,
        connect_timeout: args.connect_timeout,
        max_pending: usize::try_from(args.max_pending).unwrap_or(usize::MAX),
        fanout_protocol: match args.fanout_protocol {
            Protocol::Topics => loadgen::FanoutProtocol::Topics,
            Protocol::Prefix => loadgen::FanoutProtocol::Prefix,
            Protocol::Offsets => loadgen::FanoutProtocol::Offsets,
        },
        fanout_topic: args.topic,
        final_echo: args.final_echo,
        first_echo: args.first_echo,
        server_drain: args.server_drain,
        deflate: args.deflate,
        publish_url: args.publish_url,
        payload_kind: match args.payload_kind {
            Kind::Pattern => loadgen::PayloadKind::Pattern,
            Kind::Json => loadgen::PayloadKind::Json,
        },
        #[cfg(feature = "tls")]
        tls,
        #[cfg(feature = "tls")]
        tls_resume: args.tls_resume,
    };
    if args.processes > 1 && scenario == Scenario::Fanout {
        return Err("fanout measures one publisher's messages: it runs in one process".to_owned());
    }
    let report = if args.processes > 1 {
        loadgen::run_processes(&opts, args.processes as usize, &mut |_, o| {
            child_command(o, &trust)
        })?
    } else if args.coordinated {
        loadgen::run_coordinated(&opts, &mut wait_for_go)?
    } else {
        loadgen::run(&opts)?
    };
    // A reader that stops early (`| head`) is not an error of the run: nothing to report then.
    let mut out = std::io::stdout().lock();
    let _ = if args.json_histograms {
        writeln!(out, "{}", report.json_with_histograms())
    } else if args.json {
        writeln!(out, "{}", report.json())
    } else {
        write!(out, "{}", report.table())
    };
    drop(out);
    if let Some(path) = &args.report {
        let params = loadgen::page::parameters(&opts, args.processes as usize);
        let is_svg = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("svg"));
        let text = if is_svg {
            loadgen::page::svg(&report, &params)
        } else {
            loadgen::page::html(&report, &params)
        };
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
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

/// What the load processes of a --processes run are told to trust (wss): `--tls-ca FILE` or
/// `--insecure`, as this process was.
fn trust_args(args: &Args) -> Vec<std::ffi::OsString> {
    #[cfg(feature = "tls")]
    if let Some(ca) = &args.tls.tls_ca {
        return vec!["--tls-ca".into(), ca.into()];
    } else if args.tls.insecure {
        return vec!["--insecure".into()];
    }
    let _ = args;
    Vec::new()
}

/// The gate of a coordinated process: say where it is and how many connections are open, wait
/// for the coordinator's answer.
fn wait_for_go(stage: loadgen::Stage, open: u64) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{} {open}", stage.word())
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot reach the coordinator: {e}"))?;
    drop(out);
    let mut line = String::new();
    let answer = stage.answer();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(n) if n > 0 && line.trim() == answer => Ok(()),
        Ok(_) => Err(format!("the coordinator went away before the {answer}")),
        Err(e) => Err(format!("cannot read the {answer}: {e}")),
    }
}

/// The command line of one process of a `--processes` run: this program, `bench`, and the
/// child's options. Every field of [`Options`] but the server's pid (the coordinator measures the
/// server itself) is forwarded here: a new option must be added here too. The TLS settings go
/// as the options they were made from (`trust`: --tls-ca FILE or --insecure).
fn child_command(o: &Options, trust: &[std::ffi::OsString]) -> Command {
    let secs = |d: Duration| format!("{}s", d.as_secs_f64());
    let mut cmd = Command::new(std::env::current_exe().unwrap_or_else(|_| "c10k".into()));
    match log::max_level() {
        log::LevelFilter::Off | log::LevelFilter::Error | log::LevelFilter::Warn => {
            cmd.arg("-q");
        }
        log::LevelFilter::Info => {}
        log::LevelFilter::Debug => {
            cmd.arg("-v");
        }
        log::LevelFilter::Trace => {
            cmd.arg("-vv");
        }
    }
    cmd.args(["bench", o.scenario.name(), "--url", &o.url])
        .args(["--connections", &o.connections.to_string()])
        .args(["--payload", &o.payload.to_string()])
        .args(["--in-flight", &o.in_flight.to_string()])
        .args(["--duration", &secs(o.duration)])
        .args(["--warmup", &secs(o.warmup)])
        .args(["--rate", &o.rate.to_string()])
        .args(["--threads", &o.threads.to_string()])
        .args(["--ramp", &secs(o.ramp)])
        .args(["--delay", &secs(o.delay)])
        .args(["--rounds", &o.rounds.to_string()])
        .args(["--connect-timeout", &secs(o.connect_timeout)])
        .args(["--max-pending", &o.max_pending.to_string()])
        .args(["--coordinated", "--json-histograms"]);
    if o.binary {
        cmd.arg("--binary");
    }
    if o.final_echo {
        cmd.arg("--final-echo");
    }
    if o.first_echo {
        cmd.arg("--first-echo");
    }
    if o.server_drain {
        cmd.arg("--server-drain");
    }
    if o.deflate {
        cmd.arg("--deflate");
    }
    cmd.args(["--payload-kind", o.payload_kind.name()]);
    cmd.args(["--topic", &o.fanout_topic]);
    cmd.args([
        "--fanout-protocol",
        match o.fanout_protocol {
            loadgen::FanoutProtocol::Topics => "topics",
            loadgen::FanoutProtocol::Prefix => "prefix",
            loadgen::FanoutProtocol::Offsets => "offsets",
        },
    ]);
    cmd.args(trust);
    #[cfg(feature = "tls")]
    if o.tls_resume {
        cmd.arg("--tls-resume");
    }
    if !o.sources.is_empty() {
        let list: Vec<String> = o.sources.iter().map(ToString::to_string).collect();
        cmd.args(["--source", &list.join(",")]);
    }
    cmd
}
