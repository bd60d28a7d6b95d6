//! `c10k serve --dashboard`: a live view of the running server, on the server's own port.
//!
//! `GET /dashboard` answers a self-contained page (inline script and style, nothing fetched) that
//! opens a WebSocket to `/dashboard/live`. Each shard's [`Dashboard`] handler sends the sockets it
//! holds there one sample per [`SAMPLE_EVERY`]: every shard's statistics of this process
//! ([`Ctx::all_stats`]: this shard's current, the others' as last published, at most a second
//! old), with each shard's own clock so that the page computes rates per shard. The dashboard's
//! sockets are counted as connections like any other; the wrapped handler never sees them.
//!
//! Under a supervisor every worker is a process of its own and one socket reaches one worker
//! (the kernel picks, as for any connection): each sample names its worker and the number of
//! workers, and the page opens sockets until it holds one per worker (a bounded number of tries;
//! duplicates are closed at once). See `docs/operations.md`.
//!
//! The live socket is the page's only: a browser lets any page open a WebSocket to any server,
//! so the upgrade is accepted only from the server's own origin or without an `Origin` (not a
//! browser), and refused with 403 otherwise ([`origin::same_origin`]). The page itself is plain
//! HTML that another origin's script cannot read.

use std::fmt::Write as _;
use std::time::Duration;

use c10k::proto::handshake::Request;
use c10k::proto::{CloseCode, Message};
use c10k::{ConnId, Ctx, Decision, Handler, HttpResponse, Resume, Stats};

use super::origin::{self, Refusal};

/// The page served on `GET /dashboard`.
pub const DASHBOARD_PAGE: &str = include_str!("dashboard.html");
/// Where the page is served.
pub const PAGE_PATH: &str = "/dashboard";
/// Where the page's WebSocket connects.
pub const LIVE_PATH: &str = "/dashboard/live";
/// How often a sample goes out: the period at which shards publish their statistics to each
/// other, so that every sample can hold news from every shard.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// The token of the dashboard's timer; the wrapped handler's other tokens are passed on.
const TIMER_TOKEN: u64 = 0xda5b_0a4d_5a3e_0001;
/// The most dashboard sockets one shard holds; more are closed (1013, try again later).
pub const MAX_VIEWERS: usize = 64;

/// Wraps a handler and serves the live dashboard beside it.
#[derive(Debug, Clone)]
pub struct Dashboard<H> {
    inner: H,
    on: bool,
    worker: Option<u32>,
    workers: u32,
    /// The dashboard sockets of this shard.
    viewers: Vec<ConnId>,
    armed: bool,
    seq: u64,
}

impl<H> Dashboard<H> {
    /// Wraps `inner`; `on` turns the dashboard on; `worker` and `workers` say which worker
    /// process this is and how many there are (`None` and 1 without a supervisor).
    pub fn new(inner: H, on: bool, worker: Option<u32>, workers: u32) -> Self {
        Self {
            inner,
            on,
            worker,
            workers: workers.max(1),
            viewers: Vec::new(),
            armed: false,
            seq: 0,
        }
    }

    fn is_viewer(&self, id: ConnId) -> bool {
        !self.viewers.is_empty() && self.viewers.contains(&id)
    }

    /// Sends a sample to every viewer of this shard.
    fn broadcast(&mut self, ctx: &mut Ctx<'_>) {
        self.seq += 1;
        let text = sample_json(&ctx.all_stats(), ctx.shard(), self.worker, self.workers, self.seq);
        for &id in &self.viewers {
            // A viewer too slow to take a sample a second falls under the back-pressure policy.
            let _ = ctx.send_text(id, &text);
        }
    }
}

impl<H: Handler> Handler for Dashboard<H> {
    /// The wrapped handler's; a viewer keeps the default and never shows it to that handler.
    type State = H::State;

    fn on_handshake(&mut self, ctx: &mut Ctx<'_>, id: ConnId, req: &Request<'_>) -> Decision<H::State> {
        if self.on && req.path() == LIVE_PATH {
            // Any page could open this socket cross-origin and read the server's figures.
            return match origin::same_origin(req) {
                Ok(()) => Decision::accept(),
                Err(refusal) => Decision::reject(Refusal::STATUS, refusal.body()),
            };
        }
        self.inner.on_handshake(ctx, id, req)
    }

    fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, state: &mut H::State, req: &Request<'_>) {
        if !(self.on && req.path() == LIVE_PATH) {
            return self.inner.on_open(ctx, id, state, req);
        }
        // Known as a viewer until it closes, even when refused: the wrapped handler never sees it.
        self.viewers.push(id);
        if self.viewers.len() > MAX_VIEWERS {
            let _ = ctx.close(id, CloseCode::TryAgainLater, "too many dashboards");
            return;
        }
        self.seq += 1;
        let text = sample_json(&ctx.all_stats(), ctx.shard(), self.worker, self.workers, self.seq);
        let _ = ctx.send_text(id, &text);
        if !self.armed {
            self.armed = true;
            ctx.set_timer(SAMPLE_EVERY, TIMER_TOKEN);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, state: &mut H::State, msg: Message<'_>) {
        if !self.is_viewer(id) {
            self.inner.on_message(ctx, id, state, msg);
        }
    }

    fn on_ping(&mut self, ctx: &mut Ctx<'_>, id: ConnId, state: &mut H::State, payload: &[u8]) {
        if !self.is_viewer(id) {
            self.inner.on_ping(ctx, id, state, payload);
        }
    }

    fn on_pong(&mut self, ctx: &mut Ctx<'_>, id: ConnId, state: &mut H::State, payload: &[u8]) {
        if !self.is_viewer(id) {
            self.inner.on_pong(ctx, id, state, payload);
        }
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_>, id: ConnId, state: H::State, code: CloseCode, reason: &str) {
        if self.is_viewer(id) {
            self.viewers.retain(|v| *v != id);
        } else {
            self.inner.on_close(ctx, id, state, code, reason);
        }
    }

    fn on_drain(&mut self, ctx: &mut Ctx<'_>, id: ConnId, state: &mut H::State) {
        if !self.is_viewer(id) {
            self.inner.on_drain(ctx, id, state);
        }
    }

    fn on_resume(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: ConnId,
        state: &mut H::State,
        topic: &str,
        resume: Resume,
    ) {
        if !self.is_viewer(id) {
            self.inner.on_resume(ctx, id, state, topic, resume);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_>, token: u64) {
        if token != TIMER_TOKEN {
            return self.inner.on_timer(ctx, token);
        }
        if self.viewers.is_empty() {
            self.armed = false;
            return;
        }
        self.broadcast(ctx);
        ctx.set_timer(SAMPLE_EVERY, TIMER_TOKEN);
    }

    fn on_http(&mut self, ctx: &mut Ctx<'_>, req: &Request<'_>) -> HttpResponse {
        if self.on && req.method() == "GET" && req.path() == PAGE_PATH {
            return HttpResponse::html(200, DASHBOARD_PAGE);
        }
        self.inner.on_http(ctx, req)
    }
}

/// One sample: who sends it, and every shard's figures.
///
/// `{"worker":W|null,"workers":N,"pid":P,"from_shard":S,"seq":Q,"every_ms":1000,"shards":[{...}]}`;
/// each shard's object holds its counters and gauges, `snapshot_ms` (its own clock), `rtt_ms`
/// (upper bounds of its pong round-trip percentiles), `rtt_buckets` (the histogram's counts:
/// under 1 ms, then powers of two) and `rejected_by` (reason: count).
pub fn sample_json(
    shards: &[Stats],
    from_shard: usize,
    worker: Option<u32>,
    workers: u32,
    seq: u64,
) -> String {
    let mut j = String::with_capacity(256 + shards.len() * 512);
    let _ = write!(
        j,
        "{{\"worker\":{},\"workers\":{workers},\"pid\":{},\"from_shard\":{from_shard},\"seq\":{seq},\"every_ms\":{},\"shards\":[",
        worker.map_or_else(|| "null".to_owned(), |w| w.to_string()),
        std::process::id(),
        SAMPLE_EVERY.as_millis()
    );
    for (i, s) in shards.iter().enumerate() {
        if i > 0 {
            j.push(',');
        }
        let _ = write!(j, "{{\"shard\":{i}");
        for (k, v) in [
            ("snapshot_ms", s.snapshot_ms),
            ("connections_open", s.connections_open),
            ("handshaking", s.handshaking),
            ("accepted", s.accepted),
            ("handshakes", s.handshakes),
            ("rejected", s.rejected_total()),
            ("http_requests", s.http_requests),
            ("messages_in", s.messages_in),
            ("messages_out", s.messages_out),
            ("bytes_in", s.bytes_in),
            ("bytes_out", s.bytes_out),
            ("queued_bytes", s.queued_bytes),
            ("pings_sent", s.pings_sent),
            ("pongs", s.pong_rtt.count()),
            ("pong_timeouts", s.pong_timeouts),
            ("backpressure_closes", s.backpressure_closes),
            ("protocol_errors", s.protocol_errors),
        ] {
            let _ = write!(j, ",\"{k}\":{v}");
        }
        let q = |q: f64| {
            s.pong_rtt
                .quantile_upper_ms(q)
                .map_or_else(|| "null".to_owned(), |v| v.to_string())
        };
        let _ = write!(
            j,
            ",\"rtt_ms\":{{\"p50\":{},\"p90\":{},\"p99\":{}}}",
            q(0.5),
            q(0.9),
            q(0.99)
        );
        j.push_str(",\"rtt_buckets\":[");
        for (n, (_, count)) in s.pong_rtt.buckets().enumerate() {
            let sep = if n == 0 { "" } else { "," };
            let _ = write!(j, "{sep}{count}");
        }
        j.push(']');
        j.push_str(",\"rejected_by\":{");
        for (n, (reason, count)) in s.rejected.iter().enumerate() {
            let sep = if n == 0 { "" } else { "," };
            let _ = write!(j, "{sep}\"{}\":{count}", format!("{reason:?}").to_lowercase());
        }
        j.push_str("}}");
    }
    j.push_str("]}");
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_is_self_contained() {
        let page = DASHBOARD_PAGE;
        assert!(page.contains(LIVE_PATH));
        for attr in ["src=\"http", "href=\"http", "<script src", "@import", "url("] {
            assert!(!page.contains(attr), "{attr}");
        }
    }

    #[test]
    fn a_sample_names_its_worker_and_holds_every_shard() {
        let mut a = Stats::default();
        a.messages_in = 7;
        a.pong_rtt.record(0);
        a.rejected.insert(c10k::RejectReason::Version, 2);
        let j = sample_json(&[a, Stats::default()], 1, Some(3), 4, 9);
        assert!(j.starts_with("{\"worker\":3,\"workers\":4,"), "{j}");
        assert!(j.contains("\"from_shard\":1,\"seq\":9,"), "{j}");
        assert!(j.contains("{\"shard\":0,\"snapshot_ms\":0,"), "{j}");
        assert!(j.contains("\"messages_in\":7,"), "{j}");
        assert!(j.contains("\"rtt_ms\":{\"p50\":1,\"p90\":1,\"p99\":1}"), "{j}");
        assert!(j.contains("\"rejected\":2,"), "{j}");
        assert!(j.contains("\"rejected_by\":{\"version\":2}"), "{j}");
        assert!(j.contains("\"rtt_buckets\":[1,0,0,"), "{j}");
        assert!(j.contains("{\"shard\":1,"), "{j}");
        assert!(j.contains("\"rtt_ms\":{\"p50\":null"), "{j}");
        assert!(j.ends_with("}]}"), "{j}");
    }
}
