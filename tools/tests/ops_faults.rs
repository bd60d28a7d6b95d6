//! Production operation under load and faults, against `c10k serve` run as a process: slowloris,
//! slow consumers, connection churn, running out of descriptors, dead peers, graceful restart.
//!
//! The sizes here fit CI (a debug build, two cores); `benches/faults.sh` runs the same tests at
//! full size (`C10K_FULL_SIZE=1`, release build) and prints their figures. The tests of this file
//! run one at a time: they measure the server's latency, memory and CPU time, which other tests
//! running at the same time would disturb.

#[path = "common/procs.rs"]
mod procs;

use std::io::{ErrorKind, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use c10k::client::{Client, ClientConfig, Received};
use procs::*;

/// Time allowed for any one thing the server should do soon.
const WAIT: Duration = Duration::from_secs(20);

fn source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % 8) as u8))
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

fn p99_us(json: &str) -> f64 {
    json_f64(json_object(json, "latency"), "p99_us").unwrap()
}

// ---- 1. slowloris ----

/// N connections trickle a handshake request one byte per second and never finish it; every one
/// is answered 408 and closed at the handshake timeout (then replaced: the attack keeps its
/// size), while M clients echo at a fixed rate, every message answered. Their p99 round trip
/// with and without the attack is printed; it is a wall-clock figure, so only the full-size
/// benchmark run (`benches/faults.sh`, `C10K_FULL_SIZE=1`) holds it to the bar (within 2x of the
/// same run without the attack, measured just before), and makes the comparison again (at most
/// three times) when a pair misses: two shared cores make single windows noisy, while an attack
/// that really slows the server misses every time. A test run checks everything else.
#[test]
fn slowloris_is_answered_408_at_the_handshake_timeout_and_echo_p99_holds() {
    let _serial = serial();
    let trickling = size(500, 2000);
    let normal = size(200, 1000);
    let rate = size(2000, 10_000);
    let timeout = size(Duration::from_secs(2), Duration::from_secs(10));
    let window = size(Duration::from_secs(3), Duration::from_secs(15));
    let warmup = Duration::from_secs(1);
    // At full size, where the latency is held to the bar, the two cores are shared the way a
    // side-by-side benchmark shares them: the server (one shard) and the attack on CPU 0, the
    // measured echo clients alone on CPU 1. Left to the scheduler, the busy open-loop generator,
    // two shards and the attack take turns on both cores, and that dominates the figures.
    let pin = full_size();
    let (server_cpu, echo_cpu) = if pin { (Some(0), Some(1)) } else { (None, None) };
    let timeout_arg = secs(timeout);
    let mut serve_args = vec!["-q", "--handshake-timeout", &timeout_arg];
    if pin {
        serve_args.extend(["--shards", "1"]);
    }
    let server = Serve::start_on(server_cpu, &serve_args);
    let (n, m, r) = (trickling.to_string(), normal.to_string(), rate.to_string());
    let rate_args = [
        "rate",
        "--url",
        &server.url,
        "-c",
        &m,
        "--rate",
        &r,
        "--duration",
        &secs(window),
        "--warmup",
        &secs(warmup),
    ];
    let mut rounds = Vec::new();
    let mut answered = 0;
    let mut passed = false;
    let attempts = size(1, 3);
    for attempt in 1..=attempts {
        let (ok, base) = bench_on(echo_cpu, &rate_args);
        assert!(ok, "baseline: {base}");
        let before = server.stats();
        // The attack lasts a little longer than the measured run next to it.
        let attack = bench_in_background_on(
            server_cpu,
            &[
                "slowloris",
                "--url",
                &server.url,
                "-c",
                &n,
                "--delay",
                "1s",
                "--warmup",
                "0s",
                "--duration",
                &secs(warmup + window + Duration::from_secs(4)),
            ],
        );
        server.wait_stats(WAIT, |s| s.get("handshaking") >= trickling as u64 * 9 / 10);
        let (ok, under) = bench_on(echo_cpu, &rate_args);
        assert!(ok, "under attack: {under}");
        let (ok, lorises) = bench_report(attack, WAIT * 3);
        assert!(ok, "slowloris: {lorises}");
        let after = server.stats();

        // Every trickling connection was answered 408 and closed, and none ever got in.
        let completed = json_u64(&lorises, "completed").unwrap();
        assert_eq!(json_u64(&lorises, "errors"), Some(0), "{lorises}");
        assert!(completed >= trickling as u64, "{lorises}");
        let to_408 = json_object(&lorises, "latency");
        let (p50, max) = (
            json_f64(to_408, "p50_us").unwrap(),
            json_f64(to_408, "max_us").unwrap(),
        );
        let t = timeout.as_micros() as f64;
        assert!(
            p50 >= t - 10_000.0 && max <= t + 2_000_000.0,
            "408 after {p50} µs (p50), {max} µs (max); timeout {t} µs"
        );
        let timeouts = after.get("timeout") - before.get("timeout");
        assert!(
            timeouts >= completed,
            "{timeouts} timeouts < {completed} answers: {}",
            after.0
        );
        assert_eq!(
            after.get("handshakes") - before.get("handshakes"),
            normal as u64,
            "only the echo clients completed a handshake: {}",
            after.0
        );
        answered += completed;

        let (b, a) = (p99_us(&base), p99_us(&under));
        eprintln!(
            "attempt {attempt}: {trickling} trickling ({completed} answered 408, p50 {:.0} ms after connect), \
             {normal} echoing at {rate}/s: p99 {b:.0} µs without, {a:.0} µs with the attack ({:.2}x)",
            p50 / 1000.0,
            a / b
        );
        rounds.push((b, a));
        if a <= 2.0 * b {
            passed = true;
            break;
        }
    }
    assert!(
        passed || !full_size(),
        "p99 under the attack above 2x the p99 without it, every time (µs, without/with): {rounds:?}"
    );
    let s = server.wait_stats(WAIT, |s| s.get("handshaking") == 0 && s.get("sockets") == 0);
    assert!(s.get("timeout") >= answered, "{}", s.0);
}

// ---- 2. slow consumers ----

/// A raw client subscribed to `topic` that never reads again, with a small receive buffer so that
/// the kernel holds little for it.
fn slow_subscriber(server: &Serve, topic: &str) -> TcpStream {
    let mut s = connect_from(server.addr, None, Some(4096)).unwrap();
    handshake(&mut s).unwrap();
    s.write_all(&frame(true, 0x1, format!("sub {topic}").as_bytes()))
        .unwrap();
    s.write_all(&frame(true, 0x1, b"sync ready")).unwrap();
    let (op, payload) = read_frame(&mut s).unwrap();
    assert_eq!((op, payload.as_slice()), (0x1, &b"sync ready"[..]));
    s
}

/// Subscribers that never read while a publisher floods their topic: the server's memory stays
/// bounded by about the queue cap times those clients, they are closed by the back-pressure
/// policy (1008), and the subscribers that read get every message.
#[test]
fn slow_consumers_are_closed_with_1008_and_memory_stays_bounded() {
    let _serial = serial();
    let slow = size(20, 200);
    let readers = size(4, 10);
    let cap: u64 = 64 << 10;
    let payload = 8 << 10;
    let rate = 1000;
    let window = size(Duration::from_secs(4), Duration::from_secs(10));
    let server = Serve::start(&[
        "-q",
        "--mode",
        "pubsub",
        "--max-queued",
        &cap.to_string(),
        "--close-timeout",
        "1s",
    ]);
    let stuck: Vec<TcpStream> = (0..slow).map(|_| slow_subscriber(&server, "fanout")).collect();
    server.wait_stats(WAIT, |s| s.get("connections_open") == slow as u64);
    let rss_before = rss(server.pid());

    let pid = server.pid();
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(rss_before));
    let sampler = {
        let (done, peak) = (Arc::clone(&done), Arc::clone(&peak));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    // One publisher and `readers` subscribers that read everything (1 + readers connections).
    let (ok, json) = bench(&[
        "fanout",
        "--url",
        &server.url,
        "-c",
        &(readers + 1).to_string(),
        "--rate",
        &rate.to_string(),
        "--payload",
        &payload.to_string(),
        "--warmup",
        "500ms",
        "--duration",
        &secs(window),
        "--threads",
        size("1", "2"),
    ]);
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(Ordering::Relaxed);

    // The readers got every message (the bench fails a subscriber that misses one).
    assert!(ok, "{json}");
    assert_eq!(json_u64(&json, "errors"), Some(0), "{json}");
    assert!(json_u64(&json, "messages").unwrap() > 0, "{json}");
    // The slow ones were closed by the policy, each once.
    let s = server.wait_stats(WAIT, |s| s.get("sockets") == 0);
    assert_eq!(s.get("backpressure_closes"), slow as u64, "{}", s.0);
    assert_eq!(s.closes(1008), slow as u64, "{}", s.0);
    let published = s.get("published");
    let flood = published * payload as u64;
    // Memory: the queues of the slow clients are capped (a broadcast frame is shared by every
    // queue that holds it, so the cap times the clients is a generous bound), plus room for the
    // readers' connections and the allocator. Without the cap, every frame published would stay.
    let grown = peak.saturating_sub(rss_before);
    let bound = slow as u64 * cap * 2 + (8 << 20);
    eprintln!(
        "{slow} slow consumers, {readers} readers, {published} messages of {payload} B published \
         ({:.0} MiB per subscriber): server RSS {:.1} MiB -> peak {:.1} MiB (+{:.1} MiB, bound {:.1} MiB)",
        flood as f64 / 1048576.0,
        rss_before as f64 / 1048576.0,
        peak as f64 / 1048576.0,
        grown as f64 / 1048576.0,
        bound as f64 / 1048576.0
    );
    assert!(
        flood > 2 * bound,
        "the flood ({flood} B) must dwarf the bound ({bound} B)"
    );
    assert!(grown <= bound, "server RSS grew by {grown} B (bound {bound} B)");
    drop(stuck);
}

// ---- 3. churn ----

/// How one churn cycle ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cycle {
    /// Handshake, one echo, closing handshake: a well-behaved client.
    Clean,
    /// Handshake, then a reset.
    ResetOpen,
    /// Connect, then a reset before anything is sent.
    ResetAtOnce,
    /// Half a request, then a FIN.
    FinMidHandshake,
    /// Half a request, then a reset.
    ResetMidHandshake,
    /// Handshake and half a frame, then a FIN.
    FinMidFrame,
    /// Handshake and half a frame, then a reset.
    ResetMidFrame,
}

const CYCLES: [Cycle; 7] = [
    Cycle::Clean,
    Cycle::ResetOpen,
    Cycle::ResetAtOnce,
    Cycle::FinMidHandshake,
    Cycle::ResetMidHandshake,
    Cycle::FinMidFrame,
    Cycle::ResetMidFrame,
];

/// Every this many cycles, a connection is left half-open instead: it stops (no read, no write,
/// no FIN) after the handshake or in the middle of it, and is kept until the end of the test; the
/// server's keep-alive or handshake timeout must end it.
const HALF_OPEN_EVERY: usize = 50;

fn churn_cycle(server: std::net::SocketAddr, i: usize, kind: Cycle) -> Result<Option<TcpStream>, String> {
    let err = |what: &str, e: std::io::Error| format!("cycle {i} ({kind:?}): {what}: {e}");
    let mut s = connect_from(server, Some(source(i)), None).map_err(|e| err("connect", e))?;
    if i % HALF_OPEN_EVERY == HALF_OPEN_EVERY - 1 {
        if i % (2 * HALF_OPEN_EVERY) == HALF_OPEN_EVERY - 1 {
            handshake(&mut s).map_err(|e| err("handshake", e))?;
        } else {
            s.write_all(&UPGRADE[..30]).map_err(|e| err("write", e))?;
        }
        return Ok(Some(s));
    }
    let half_frame = frame(true, 0x2, &[7u8; 200]);
    match kind {
        Cycle::Clean => {
            handshake(&mut s).map_err(|e| err("handshake", e))?;
            let msg = format!("churn {i}");
            s.write_all(&frame(true, 0x1, msg.as_bytes()))
                .map_err(|e| err("write", e))?;
            let (op, echo) = read_frame(&mut s).map_err(|e| err("echo", e))?;
            if op != 0x1 || echo != msg.as_bytes() {
                return Err(format!("cycle {i}: wrong echo {op} {echo:?}"));
            }
            s.write_all(&close_frame(1000)).map_err(|e| err("close", e))?;
            let (op, _) = read_frame(&mut s).map_err(|e| err("close echo", e))?;
            if op != 0x8 {
                return Err(format!("cycle {i}: opcode {op} instead of the Close echo"));
            }
            if !closed_by_peer(&mut s) {
                return Err(format!(
                    "cycle {i}: the server did not close after the close handshake"
                ));
            }
        }
        Cycle::ResetOpen => {
            handshake(&mut s).map_err(|e| err("handshake", e))?;
            reset(s);
        }
        Cycle::ResetAtOnce => reset(s),
        Cycle::FinMidHandshake => {
            s.write_all(&UPGRADE[..40]).map_err(|e| err("write", e))?;
        }
        Cycle::ResetMidHandshake => {
            s.write_all(&UPGRADE[..40]).map_err(|e| err("write", e))?;
            reset(s);
        }
        Cycle::FinMidFrame => {
            handshake(&mut s).map_err(|e| err("handshake", e))?;
            s.write_all(&half_frame[..100]).map_err(|e| err("write", e))?;
        }
        Cycle::ResetMidFrame => {
            handshake(&mut s).map_err(|e| err("handshake", e))?;
            s.write_all(&half_frame[..100]).map_err(|e| err("write", e))?;
            reset(s);
        }
    }
    Ok(None)
}

/// An echo client that keeps echoing until `stop`; returns its echo count or its first error.
fn echo_loop(url: String, id: usize, stop: Arc<AtomicBool>) -> Result<u64, String> {
    let config = ClientConfig {
        timeout: Some(Duration::from_secs(10)),
        ..ClientConfig::default()
    };
    let mut c = Client::connect_with(&url, &config).map_err(|e| format!("echo {id}: connect: {e}"))?;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let text = format!("echo {id} {n}");
        c.send_text(&text)
            .map_err(|e| format!("echo {id}: send {n}: {e}"))?;
        match c.recv_message() {
            Ok(Received::Text(t)) if t == text => n += 1,
            other => return Err(format!("echo {id}: message {n}: {other:?}")),
        }
    }
    c.close(c10k::proto::CloseCode::Normal, "")
        .map_err(|e| format!("echo {id}: close: {e}"))?;
    while c.recv().is_ok() {}
    Ok(n)
}

/// Connect/close cycles of every kind of ending, while other clients echo: the echo clients and
/// the well-behaved cycles see no error, and afterwards the server is back where it started:
/// descriptors, slab entries, timers, and (within a margin) memory.
#[test]
fn churn_of_every_kind_of_ending_leaves_the_server_as_it_was() {
    let _serial = serial();
    let cycles = size(20_000, 200_000);
    let threads = 6;
    let echoers = 8;
    let server = Serve::start(&[
        "-q",
        "--handshake-timeout",
        "1s",
        "--ping-interval",
        "1s",
        "--pong-timeout",
        "1s",
        "--close-timeout",
        "1s",
    ]);
    let pid = server.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let echo: Vec<_> = (0..echoers)
        .map(|id| {
            let (url, stop) = (server.url.clone(), Arc::clone(&stop));
            std::thread::spawn(move || echo_loop(url, id, stop))
        })
        .collect();
    let base = server.wait_stats(WAIT, |s| s.get("connections_open") == echoers as u64);

    let run = |from: usize, to: usize| -> Vec<TcpStream> {
        let next = Arc::new(AtomicUsize::new(from));
        let kept = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (next, kept, errors) = (Arc::clone(&next), Arc::clone(&kept), Arc::clone(&errors));
                let addr = server.addr;
                std::thread::spawn(move || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= to {
                            break;
                        }
                        match churn_cycle(addr, i, CYCLES[i % CYCLES.len()]) {
                            Ok(Some(s)) => kept.lock().unwrap().push(s),
                            Ok(None) => {}
                            Err(e) => errors.lock().unwrap().push(e),
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        let errors = errors.lock().unwrap();
        assert!(
            errors.is_empty(),
            "{} cycles failed, first: {}",
            errors.len(),
            errors[0]
        );
        std::mem::take(&mut *kept.lock().unwrap())
    };
    // A warm-up, so that the baseline includes the allocator's and the slab's working set.
    let warm = cycles / 50;
    let mut half_open = run(0, warm);
    server.wait_stats(WAIT, |s| {
        s.get("sockets") == echoers as u64 && s.get("timers") == base.get("timers")
    });
    let fds_before = fds(pid);
    let rss_before = rss(pid);
    let started = Instant::now();
    half_open.extend(run(warm, warm + cycles));
    let took = started.elapsed();
    let during = server.stats();
    // Back to the baseline once the half-open ones are timed out (keep-alive 1 s + pong 1 s;
    // handshake 1 s + close 1 s).
    let after = server.wait_stats(WAIT, |s| {
        s.get("sockets") == echoers as u64
            && s.get("timers") == base.get("timers")
            && s.get("handshaking") == 0
            && s.get("connections_open") == echoers as u64
    });
    let fds_ok = procs_wait(|| fds(pid) == fds_before);
    let fds_after = fds(pid);
    let rss_after = rss(pid);
    stop.store(true, Ordering::Relaxed);
    let echoed: u64 = echo
        .into_iter()
        .map(|t| t.join().unwrap().unwrap_or_else(|e| panic!("{e}")))
        .sum();
    let margin: u64 = 16 << 20;
    eprintln!(
        "{cycles} churn cycles in {:.1} s ({:.0}/s) over {threads} threads, {} left half-open, \
         {echoed} echoes meanwhile on {echoers} clients; server: {} accepted, {} pong timeouts, \
         {} handshake timeouts; fds {fds_before} -> {}, RSS {:.1} -> {:.1} MiB",
        took.as_secs_f64(),
        cycles as f64 / took.as_secs_f64(),
        half_open.len(),
        after.get("accepted"),
        after.get("pong_timeouts"),
        after.get("timeout"),
        fds_after,
        rss_before as f64 / 1048576.0,
        rss_after as f64 / 1048576.0
    );
    assert!(fds_ok, "descriptors: {fds_before} before, {fds_after} after");
    assert!(echoed > 0);
    assert!(during.get("accepted") >= (warm + cycles) as u64, "{}", during.0);
    assert!(
        after.get("pong_timeouts") > 0 && after.get("timeout") > 0,
        "{}",
        after.0
    );
    assert!(
        rss_after <= rss_before + margin,
        "RSS {rss_before} -> {rss_after} B (margin {margin} B)"
    );
    drop(half_open);
}

/// Polls `f` for up to [`WAIT`].
fn procs_wait(mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + WAIT;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

// ---- 4. out of descriptors ----

/// A server whose descriptor limit is low is flooded with connections: it keeps serving those it
/// has, does not spin while at the limit, counts and logs its accept pauses, and accepts the
/// waiting connections once descriptors are free again.
#[test]
fn out_of_descriptors_the_server_pauses_accepts_keeps_serving_and_recovers() {
    let _serial = serial();
    let limit = 128;
    let server = Serve::start_with_fd_limit(&["-q", "--shards", "1"], limit);
    let pid = server.pid();
    // Fill every free descriptor with an open connection, until one is not answered: the kernel
    // completed it (the listen backlog), the server cannot accept it. More of those follow; their
    // requests wait with them.
    let mut open = Vec::new();
    let first_waiting = loop {
        let mut s = connect_from(server.addr, None, None).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(UPGRADE).unwrap();
        match read_head(&mut s) {
            Ok(head) if head.starts_with("HTTP/1.1 101") => open.push(s),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break s,
            other => panic!("connection {}: {other:?}", open.len()),
        }
        assert!(open.len() < limit as usize, "no limit reached");
    };
    let room = open.len();
    // (More than the limit where this process handed down descriptors of its own.)
    assert!(fds(pid) >= limit as usize, "{} descriptors", fds(pid));
    let waiting = 20;
    let mut pending = vec![first_waiting];
    pending.extend((1..waiting).map(|_| {
        let mut s = connect_from(server.addr, None, None).unwrap();
        s.write_all(UPGRADE).unwrap();
        s
    }));
    for s in &pending {
        s.set_read_timeout(Some(WAIT)).unwrap();
    }
    assert!(
        procs_wait(|| server.log().iter().any(|l| l.contains("pausing accepts"))),
        "no accept pause logged: {:?}",
        server.log()
    );
    // At the limit: no spinning.
    let (cpu0, t0) = (cpu_us(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let cores = (cpu_us(pid) - cpu0) as f64 / 1e6 / t0.elapsed().as_secs_f64();
    // The connections it has are served.
    for (i, s) in open.iter_mut().enumerate().step_by(16) {
        let msg = format!("still here {i}");
        s.write_all(&frame(true, 0x1, msg.as_bytes())).unwrap();
        assert_eq!(read_frame(s).unwrap(), (0x1, msg.into_bytes()));
    }
    let at_limit = server.stats();
    let pauses = at_limit.get("accept_pauses");
    eprintln!(
        "at {limit} descriptors: {:.1}% of a core over 2 s, {pauses} accept pauses so far",
        cores * 100.0
    );
    assert!(
        cores < 0.25,
        "the server used {cores:.2} cores while out of descriptors"
    );
    assert!(pauses >= 2, "{}", at_limit.0);
    assert_eq!(at_limit.get("handshakes"), room as u64, "{}", at_limit.0);

    // Free some descriptors: every waiting connection gets in and is served.
    for s in open.drain(..waiting + 10) {
        drop(s);
    }
    for (i, s) in pending.iter_mut().enumerate() {
        let head = read_head(s).unwrap();
        assert!(
            head.starts_with("HTTP/1.1 101"),
            "waiting connection {i}: {head:?}"
        );
        let msg = format!("in at last {i}");
        s.write_all(&frame(true, 0x1, msg.as_bytes())).unwrap();
        assert_eq!(read_frame(s).unwrap(), (0x1, msg.into_bytes()));
    }
    let s = server.stats();
    assert_eq!(s.get("handshakes"), (room + waiting) as u64, "{}", s.0);
    assert!(s.get("accept_pauses") >= pauses);
}

// ---- 5. dead peers ----

/// A peer that stops answering (socket open, nothing read, no pong) is dropped after its first
/// ping (between half a ping interval and an interval after the open) plus the pong timeout, and
/// counted; a peer that answers pings stays.
#[test]
fn dead_peer_is_dropped_after_ping_interval_and_pong_timeout() {
    let _serial = serial();
    let server = Serve::start(&["-q", "--ping-interval", "500ms", "--pong-timeout", "500ms"]);
    // A live client: its blocking reads answer the server's pings.
    let config = ClientConfig {
        timeout: Some(Duration::from_secs(10)),
        ..ClientConfig::default()
    };
    let mut live = Client::connect_with(&server.url, &config).unwrap();
    let reader = std::thread::spawn(move || {
        let mut pings = 0;
        let until = Instant::now() + Duration::from_millis(2500);
        while Instant::now() < until {
            match live.recv() {
                Ok(Received::Ping(_)) => pings += 1,
                other => panic!("live client: {other:?}"),
            }
        }
        (live, pings)
    });
    let mut dead = connect_from(server.addr, None, None).unwrap();
    handshake(&mut dead).unwrap();
    let opened = Instant::now();
    let s = server.wait_stats(WAIT, |s| s.get("pong_timeouts") == 1);
    let took = opened.elapsed();
    eprintln!("dead peer dropped {} ms after its handshake", took.as_millis());
    // Half the 500 ms interval and the 500 ms pong timeout, less the timer wheel's 10 ms tick.
    assert!(took >= Duration::from_millis(740), "dropped after {took:?}");
    assert!(took < Duration::from_secs(5), "dropped after {took:?}");
    assert_eq!(s.closes(1006), 1, "{}", s.0);
    // On the wire: a ping, then the end.
    assert_eq!(read_frame(&mut dead).unwrap().0, 0x9);
    assert!(closed_by_peer(&mut dead));
    let (mut live, pings) = reader.join().unwrap();
    assert!(pings >= 3, "{pings} pings");
    live.send_text("alive").unwrap();
    assert_eq!(live.recv_message().unwrap(), Received::Text("alive".into()));
    let s = server.stats();
    assert_eq!(s.get("pong_timeouts"), 1, "{}", s.0);
    assert_eq!(s.get("connections_open"), 1, "{}", s.0);
}

/// A peer that answers every ping is pinged again after each ping interval of silence, even when
/// the pong timeout is longer: a pong puts the connection back to keep-alive (the silence between
/// pings must stay below a load balancer's idle timeout, whatever the pong timeout).
#[test]
fn answered_pings_come_every_interval_whatever_the_pong_timeout() {
    let _serial = serial();
    let server = Serve::start(&["-q", "--ping-interval", "300ms", "--pong-timeout", "5s"]);
    let config = ClientConfig {
        timeout: Some(Duration::from_secs(10)),
        ..ClientConfig::default()
    };
    let mut c = Client::connect_with(&server.url, &config).unwrap();
    let (mut pings, mut longest, mut last) = (0, Duration::ZERO, Instant::now());
    while pings < 6 {
        match c.recv() {
            Ok(Received::Ping(_)) => {
                pings += 1;
                longest = longest.max(last.elapsed());
                last = Instant::now();
            }
            other => panic!("{other:?} after {pings} pings"),
        }
    }
    eprintln!("6 pings answered, at most {} ms apart", longest.as_millis());
    assert!(longest < Duration::from_secs(2), "{longest:?} between two pings");
    assert_eq!(server.stats().get("pong_timeouts"), 0);
}

// ---- 6. graceful restart ----

/// What an echo client saw when the server went away.
#[derive(Debug)]
struct Ending {
    code: Option<u16>,
    sent: u64,
    echoed: u64,
}

/// Keeps `window` messages in flight, checks each echo in order, until the server's Close.
fn echo_until_close(url: &str, id: usize, window: u64, warm: &AtomicUsize) -> Result<Ending, String> {
    let config = ClientConfig {
        timeout: Some(Duration::from_secs(20)),
        ..ClientConfig::default()
    };
    let mut c = Client::connect_with(url, &config).map_err(|e| format!("client {id}: {e}"))?;
    let (mut sent, mut echoed) = (0u64, 0u64);
    let msg = |n: u64| format!("client {id} message {n}");
    while sent < window {
        c.send_text(&msg(sent)).map_err(|e| format!("client {id}: {e}"))?;
        sent += 1;
    }
    loop {
        match c.recv_message() {
            Ok(Received::Text(t)) => {
                if t != msg(echoed) {
                    return Err(format!("client {id}: got {t:?}, expected {:?}", msg(echoed)));
                }
                echoed += 1;
                if echoed == 10 {
                    warm.fetch_add(1, Ordering::Relaxed);
                }
                if c.send_text(&msg(sent)).is_ok() {
                    sent += 1;
                }
            }
            Ok(Received::Close(code, _)) => {
                // The Close was answered by recv; the server ends the connection.
                let end = c.recv();
                if !matches!(end, Err(c10k::client::ClientError::Closed)) {
                    return Err(format!("client {id}: after the Close: {end:?}"));
                }
                return Ok(Ending {
                    code: Some(code.into()),
                    sent,
                    echoed,
                });
            }
            other => return Err(format!("client {id}: {other:?} after {echoed} echoes")),
        }
    }
}

/// The messages out of a `stopped: ... N messages in, M out` log line (logfmt: the message is
/// the quoted `msg` field, last on the line).
fn messages_out(line: &str) -> u64 {
    let line = line.trim_end().trim_end_matches('"');
    let before = line
        .strip_suffix(" out")
        .unwrap_or_else(|| panic!("not a stopped line: {line}"));
    before.rsplit(' ').next().unwrap().parse().unwrap()
}

fn graceful_restart(processes: Option<&str>) {
    let clients = 40;
    let window = 4;
    let drain = Duration::from_secs(3);
    let mut args = vec!["--drain-timeout", "3s", "--shards", "1"];
    if let Some(p) = processes {
        args.extend(["--processes", p]);
    }
    let mut server = Serve::start(&args);
    let warm = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..clients)
        .map(|id| {
            let (url, warm) = (server.url.clone(), Arc::clone(&warm));
            std::thread::spawn(move || echo_until_close(&url, id, window, &warm))
        })
        .collect();
    assert!(
        procs_wait(|| warm.load(Ordering::Relaxed) == clients),
        "the clients did not all get going"
    );
    std::thread::sleep(Duration::from_millis(500));
    let signalled = Instant::now();
    server.terminate();
    let status = server.wait_exit(drain + Duration::from_secs(10));
    let took = signalled.elapsed();
    server.wait_log_end();
    let endings: Vec<Ending> = threads
        .into_iter()
        .map(|t| t.join().unwrap().unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let log = server.log();
    let stopped: Vec<&String> = log.iter().filter(|l| l.contains("stopped:")).collect();
    let out: u64 = stopped.iter().map(|l| messages_out(l)).sum();
    let echoed: u64 = endings.iter().map(|e| e.echoed).sum();
    let sent: u64 = endings.iter().map(|e| e.sent).sum();
    eprintln!(
        "SIGTERM with {clients} clients echoing ({}): exit after {} ms; {sent} sent, {echoed} echoed, \
         the server sent {out}",
        processes.map_or("one process".to_owned(), |p| format!("{p} processes")),
        took.as_millis()
    );
    assert!(status.success(), "exit status {status}; log: {log:?}");
    assert!(took <= drain + Duration::from_secs(2), "exit after {took:?}");
    assert_eq!(
        stopped.len(),
        processes.map_or(1, |p| p.parse().unwrap()),
        "{log:?}"
    );
    for (id, e) in endings.iter().enumerate() {
        assert_eq!(e.code, Some(1001), "client {id}: {e:?}");
        // Only what was in flight when the Close came may be unanswered.
        assert!(e.sent - e.echoed <= window, "client {id}: {e:?}");
    }
    // Every echo the server sent arrived before its Close: none was lost.
    assert_eq!(echoed, out, "{log:?}");
}

/// SIGTERM during an echo load: every client gets 1001 Going Away, every message the server took
/// before its Close was echoed (and arrived), and the process exits within the drain timeout.
#[test]
fn sigterm_during_echo_load_drains_every_client_with_1001() {
    let _serial = serial();
    graceful_restart(None);
}

/// The same with a supervisor and two worker processes.
#[test]
fn sigterm_during_echo_load_drains_every_client_with_1001_over_two_processes() {
    let _serial = serial();
    graceful_restart(Some("2"));
}
