//! Health checks and metrics for any handler: `GET /healthz` and `GET /metrics` (Prometheus text
//! format), each turned on separately.

use std::fmt::Write as _;

use crate::proto::handshake::Request;
use crate::proto::{CloseCode, Message};
use crate::{ConnId, Ctx, Decision, Handler, HttpResponse, Resume, Stats};

/// Wraps a handler and answers `/healthz` and `/metrics` before it sees plain HTTP requests.
#[derive(Debug, Clone)]
pub struct Ops<H> {
    inner: H,
    healthz: bool,
    metrics: bool,
    /// The worker index, a label of every metric when running under a supervisor.
    worker: Option<u32>,
}

impl<H> Ops<H> {
    /// Wraps `inner`; `healthz` and `metrics` turn the endpoints on; `worker` labels the metrics.
    pub fn new(inner: H, healthz: bool, metrics: bool, worker: Option<u32>) -> Self {
        Self {
            inner,
            healthz,
            metrics,
            worker,
        }
    }
}

impl<H: Handler> Handler for Ops<H> {
    type State = H::State;

    fn on_handshake(&mut self, ctx: &mut Ctx<'_>, id: ConnId, req: &Request<'_>) -> Decision<H::State> {
        self.inner.on_handshake(ctx, id, req)
    }

    fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, state: &mut H::State, req: &Request<'_>) {
        self.inner.on_open(ctx, id, state, req);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, state: &mut H::State, msg: Message<'_>) {
        self.inner.on_message(ctx, id, state, msg);
    }

    fn on_ping(&mut self, ctx: &mut Ctx<'_>, id: ConnId, state: &mut H::State, payload: &[u8]) {
        self.inner.on_ping(ctx, id, state, payload);
    }

    fn on_pong(&mut self, ctx: &mut Ctx<'_>, id: ConnId, state: &mut H::State, payload: &[u8]) {
        self.inner.on_pong(ctx, id, state, payload);
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_>, id: ConnId, state: H::State, code: CloseCode, reason: &str) {
        self.inner.on_close(ctx, id, state, code, reason);
    }

    fn on_drain(&mut self, ctx: &mut Ctx<'_>, id: ConnId, state: &mut H::State) {
        self.inner.on_drain(ctx, id, state);
    }

    fn on_resume(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: ConnId,
        state: &mut H::State,
        topic: &str,
        resume: Resume,
    ) {
        self.inner.on_resume(ctx, id, state, topic, resume);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_>, token: u64) {
        self.inner.on_timer(ctx, token);
    }

    fn on_http(&mut self, ctx: &mut Ctx<'_>, req: &Request<'_>) -> HttpResponse {
        match (req.method(), req.path()) {
            ("GET", "/healthz") if self.healthz => {
                if ctx.is_draining() {
                    HttpResponse::text(503, "draining\n")
                } else {
                    HttpResponse::text(200, "ok\n")
                }
            }
            ("GET", "/metrics") if self.metrics => HttpResponse::with_type(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                prometheus(&ctx.all_stats(), self.worker, ctx.is_draining()).into_bytes(),
            ),
            _ => self.inner.on_http(ctx, req),
        }
    }
}

/// A metric with one value per shard: name, type, help, and how to read it.
type Scalar = (&'static str, &'static str, &'static str, fn(&Stats) -> u64);

/// One metric family: name, type, help, and a value per shard (with optional extra labels).
struct Family<'a> {
    name: &'a str,
    kind: &'a str,
    help: &'a str,
}

/// Renders every shard's statistics in the Prometheus text exposition format (version 0.0.4).
pub fn prometheus(shards: &[Stats], worker: Option<u32>, draining: bool) -> String {
    let mut out = String::with_capacity(4096);
    let labels = |shard: usize, extra: &str| {
        let mut l = format!("shard=\"{shard}\"");
        if let Some(w) = worker {
            let _ = write!(l, ",worker=\"{w}\"");
        }
        if !extra.is_empty() {
            l.push(',');
            l.push_str(extra);
        }
        l
    };
    let mut family = |f: Family<'_>, values: &dyn Fn(&Stats) -> Vec<(String, u64)>| {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for (i, s) in shards.iter().enumerate() {
            for (extra, v) in values(s) {
                let _ = writeln!(out, "{}{{{}}} {v}", f.name, labels(i, &extra));
            }
        }
    };
    let one = |v: fn(&Stats) -> u64| move |s: &Stats| vec![(String::new(), v(s))];
    let scalars: [Scalar; 31] = [
        (
            "c10k_connections_open",
            "gauge",
            "Open WebSocket connections.",
            |s| s.connections_open,
        ),
        (
            "c10k_handshaking",
            "gauge",
            "Accepted sockets still in their handshake.",
            |s| s.handshaking,
        ),
        ("c10k_sockets", "gauge", "Entries in the connection table.", |s| {
            s.sockets
        }),
        ("c10k_topics", "gauge", "Topics with subscribers.", |s| s.topics),
        (
            "c10k_queued_bytes",
            "gauge",
            "Bytes waiting in write queues for the kernel to take them.",
            |s| s.queued_bytes,
        ),
        ("c10k_accepted_total", "counter", "Sockets accepted.", |s| {
            s.accepted
        }),
        (
            "c10k_handshakes_total",
            "counter",
            "Handshakes completed (101 sent).",
            |s| s.handshakes,
        ),
        (
            "c10k_tls_handshakes_total",
            "counter",
            "TLS handshakes completed.",
            |s| s.tls_handshakes,
        ),
        (
            "c10k_tls_resumed_total",
            "counter",
            "TLS handshakes completed that resumed an earlier session.",
            |s| s.tls_resumed,
        ),
        (
            "c10k_http_requests_total",
            "counter",
            "Plain HTTP requests answered.",
            |s| s.http_requests,
        ),
        ("c10k_messages_in_total", "counter", "Messages received.", |s| {
            s.messages_in
        }),
        (
            "c10k_messages_out_total",
            "counter",
            "Messages sent (broadcast deliveries included).",
            |s| s.messages_out,
        ),
        (
            "c10k_bytes_in_total",
            "counter",
            "Message payload bytes received.",
            |s| s.bytes_in,
        ),
        (
            "c10k_bytes_out_total",
            "counter",
            "Message payload bytes sent.",
            |s| s.bytes_out,
        ),
        (
            "c10k_protocol_errors_total",
            "counter",
            "Connections failed on a protocol error.",
            |s| s.protocol_errors,
        ),
        (
            "c10k_backpressure_closes_total",
            "counter",
            "Connections closed for a full write queue (1008).",
            |s| s.backpressure_closes,
        ),
        (
            "c10k_backpressure_drops_total",
            "counter",
            "Messages dropped for a full write queue.",
            |s| s.backpressure_drops,
        ),
        (
            "c10k_accept_errors_total",
            "counter",
            "Accept errors of any kind.",
            |s| s.accept_errors,
        ),
        (
            "c10k_accept_pauses_total",
            "counter",
            "Accept pauses after running out of descriptors.",
            |s| s.accept_pauses,
        ),
        (
            "c10k_pings_sent_total",
            "counter",
            "Keep-alive pings sent.",
            |s| s.pings_sent,
        ),
        (
            "c10k_pong_timeouts_total",
            "counter",
            "Connections dropped for not answering a ping.",
            |s| s.pong_timeouts,
        ),
        (
            "c10k_close_timeouts_total",
            "counter",
            "Connections dropped when a Close got no answer.",
            |s| s.close_timeouts,
        ),
        (
            "c10k_published_total",
            "counter",
            "Messages published to topics.",
            |s| s.published,
        ),
        (
            "c10k_deliveries_total",
            "counter",
            "Broadcast frames queued for subscribers.",
            |s| s.deliveries,
        ),
        (
            "c10k_memory_budget_bytes",
            "gauge",
            "The shard's share of the memory budget.",
            |s| s.memory.budget,
        ),
        (
            "c10k_overload_pauses_total",
            "counter",
            "Times the shard stopped accepting because it neared its share of the memory budget.",
            |s| s.overload_pauses,
        ),
        (
            "c10k_overload_closes_total",
            "counter",
            "Connections closed (1013) because the shard was over its share of the memory budget.",
            |s| s.overload_closes,
        ),
        (
            "c10k_message_timeouts_total",
            "counter",
            "Connections failed (1008) for a message not completed within the message timeout.",
            |s| s.message_timeouts,
        ),
        (
            "c10k_control_rate_closes_total",
            "counter",
            "Connections failed (1008) for control frames over the rate limit.",
            |s| s.control_rate_closes,
        ),
        (
            "c10k_handler_panics_total",
            "counter",
            "Handler callbacks that panicked (the connection failed with 1011, or answered 500).",
            |s| s.handler_panics,
        ),
        (
            "c10k_topic_limit_refusals_total",
            "counter",
            "Subscriptions refused for the per-connection topic limit.",
            |s| s.topic_limit_refusals,
        ),
    ];
    for (name, kind, help, v) in scalars {
        family(Family { name, kind, help }, &one(v));
    }
    family(
        Family {
            name: "c10k_inbox_drops_total",
            kind: "counter",
            help: "Commands from other threads refused because the shard's inbox was full.",
        },
        &one(|s| s.inbox_drops),
    );
    family(
        Family {
            name: "c10k_memory_bytes",
            kind: "gauge",
            help: "Bytes held for peers, by kind (see docs/security.md).",
        },
        &|s| {
            let m = &s.memory;
            [
                ("queued", m.queued),
                ("messages", m.messages),
                ("input", m.input),
                ("tls", m.tls),
                ("topics", m.topics),
                ("inbox", m.inbox),
                ("shared", m.shared),
                ("bridge", m.bridge),
                ("disposing", m.disposing),
            ]
            .iter()
            .map(|(k, v)| (format!("kind=\"{k}\""), *v))
            .collect()
        },
    );
    family(
        Family {
            name: "c10k_handshakes_rejected_total",
            kind: "counter",
            help: "Handshakes refused, by reason.",
        },
        &|s| {
            s.rejected
                .iter()
                .map(|(r, n)| (format!("reason=\"{}\"", r.label()), *n))
                .collect()
        },
    );
    family(
        Family {
            name: "c10k_tls_failures_total",
            kind: "counter",
            help: "TLS connections that failed or ended badly, by cause.",
        },
        &|s| {
            s.tls_failures
                .iter()
                .map(|(f, n)| (format!("cause=\"{}\"", f.label()), *n))
                .collect()
        },
    );
    family(
        Family {
            name: "c10k_closes_total",
            kind: "counter",
            help: "Connections ended, by the close code reported to the handler (3xxx, 4xxx: any code of that range).",
        },
        &|s| {
            s.closes
                .iter()
                .map(|(c, n)| {
                    let code = match c {
                        3000 => "3xxx".to_owned(),
                        4000 => "4xxx".to_owned(),
                        c => c.to_string(),
                    };
                    (format!("code=\"{code}\""), *n)
                })
                .collect()
        },
    );
    let _ = writeln!(
        out,
        "# HELP c10k_pong_rtt_ms Round trip of keep-alive pings, in milliseconds (shard clock)."
    );
    let _ = writeln!(out, "# TYPE c10k_pong_rtt_ms histogram");
    for (i, s) in shards.iter().enumerate() {
        let mut cumulative = 0;
        for (bound, n) in s.pong_rtt.buckets() {
            cumulative += n;
            let le = bound.map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(
                out,
                "c10k_pong_rtt_ms_bucket{{{}}} {cumulative}",
                labels(i, &format!("le=\"{le}\""))
            );
        }
        let _ = writeln!(
            out,
            "c10k_pong_rtt_ms_sum{{{}}} {}",
            labels(i, ""),
            s.pong_rtt.sum_ms()
        );
        let _ = writeln!(
            out,
            "c10k_pong_rtt_ms_count{{{}}} {}",
            labels(i, ""),
            s.pong_rtt.count()
        );
    }
    let _ = writeln!(out, "# HELP c10k_draining Whether the server is shutting down.");
    let _ = writeln!(out, "# TYPE c10k_draining gauge");
    let w = worker.map_or_else(String::new, |w| format!("{{worker=\"{w}\"}}"));
    let _ = writeln!(out, "c10k_draining{w} {}", u8::from(draining));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RejectReason;

    #[test]
    fn metrics_are_in_the_prometheus_text_format() {
        let mut a = Stats {
            connections_open: 3,
            messages_in: 10,
            ..Stats::default()
        };
        a.closes.insert(1000, 2);
        a.closes.insert(crate::close_code_bucket(4321), 5);
        a.memory.queued = 77;
        a.rejected.insert(RejectReason::AddressLimit, 1);
        a.pong_rtt.record(0);
        a.pong_rtt.record(3);
        a.rejected.insert(RejectReason::Version, 1);
        let b = Stats {
            connections_open: 4,
            ..Stats::default()
        };
        let text = prometheus(&[a, b], Some(2), false);
        assert!(text.contains("# TYPE c10k_connections_open gauge\n"));
        assert!(text.contains("c10k_connections_open{shard=\"0\",worker=\"2\"} 3\n"));
        assert!(text.contains("c10k_connections_open{shard=\"1\",worker=\"2\"} 4\n"));
        assert!(text.contains("c10k_messages_in_total{shard=\"0\",worker=\"2\"} 10\n"));
        assert!(text.contains("c10k_closes_total{shard=\"0\",worker=\"2\",code=\"1000\"} 2\n"));
        assert!(text.contains("c10k_closes_total{shard=\"0\",worker=\"2\",code=\"4xxx\"} 5\n"));
        assert!(text.contains("c10k_memory_bytes{shard=\"0\",worker=\"2\",kind=\"queued\"} 77\n"));
        assert!(text.contains(
            "c10k_handshakes_rejected_total{shard=\"0\",worker=\"2\",reason=\"address_limit\"} 1\n"
        ));
        assert!(
            text.contains("c10k_handshakes_rejected_total{shard=\"0\",worker=\"2\",reason=\"version\"} 1\n")
        );
        assert!(text.contains("c10k_draining{worker=\"2\"} 0\n"));
        assert!(text.contains("# TYPE c10k_pong_rtt_ms histogram\n"));
        assert!(text.contains("c10k_pong_rtt_ms_bucket{shard=\"0\",worker=\"2\",le=\"1\"} 1\n"));
        assert!(text.contains("c10k_pong_rtt_ms_bucket{shard=\"0\",worker=\"2\",le=\"4\"} 2\n"));
        assert!(text.contains("c10k_pong_rtt_ms_sum{shard=\"0\",worker=\"2\"} 3\n"));
        assert!(text.contains("c10k_pong_rtt_ms_bucket{shard=\"1\",worker=\"2\",le=\"+Inf\"} 0\n"));
        // Every sample line is `name{labels} value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<u64>().is_ok(), "{line}");
            assert!(series.starts_with("c10k_") && series.ends_with('}'), "{line}");
        }
    }
}
