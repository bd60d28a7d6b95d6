//! The slowloris scenario: connections that send a handshake request one byte per `--delay` and
//! never finish it (after the request line and the usual header fields come header lines
//! without end). The server must answer each with 408 at its handshake timeout and close it; a
//! connection that was answered and closed is replaced by a new one until the end of the window,
//! so the attack keeps its size.
//!
//! Counted: connections opened (`connected`), the 408 answers followed by the server's close
//! (`completed`), the time from connect to the 408 (`latency`), connections still trickling at
//! the end (`survivors`). Any other answer, a close without an answer, an answered connection the
//! server does not close, or a reset is an error.
//!
//! Over `wss://` the TLS handshake is made at once, and the request trickles inside it, one byte
//! per TLS record: the server must answer the same 408, encrypted.

use std::cmp::Reverse;
use std::io::{self, Read, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Driver;
use super::client::Phase;

/// Header lines sent after the start of the request, forever: the blank line that would end the
/// head never comes.
const FILLER: &[u8] = b"X-Slow: 1\r\n";
/// Most bytes of an answer kept while looking for the end of its status line.
const MAX_STATUS_LINE: usize = 1024;
/// Time allowed, after the window, for answered connections to be closed by the server.
const CLOSE_GRACE: Duration = Duration::from_secs(3);
/// Longest wait in one turn of the loop.
const TURN: Duration = Duration::from_millis(50);

impl Driver {
    pub(super) fn run_slowloris(&mut self, start: Instant) {
        let opts = self.shared.opts.clone();
        // 1. Open every connection; each starts trickling as soon as it is connected.
        let deadline = start + opts.connect_timeout;
        while (!self.to_open.is_empty() || self.any_phase(|p| p == Phase::Connecting))
            && Instant::now() < deadline
        {
            self.open_more(self.shared.opts.max_pending);
            self.trickle_turn(Instant::now() + TURN);
        }
        let stuck: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.phase == Phase::Connecting)
            .map(|(k, _)| k)
            .collect();
        for key in stuck {
            self.fail(key, "not connected before the connect timeout".to_owned());
        }
        for _ in self.to_open.drain(..) {
            self.result.errors += 1;
        }
        self.shared.connected.wait();
        self.shared.go.wait();
        // 2. Trickle, and replace every connection the server answers and closes.
        let t0 = Instant::now();
        let end = t0 + opts.warmup + opts.duration;
        self.window = Some((t0, end));
        if !self.shared.abort.load(Ordering::Acquire) {
            while Instant::now() < end {
                self.open_more(self.shared.opts.max_pending);
                self.trickle_turn(end);
            }
        }
        // 3. Leave the tricklers; give the answered ones a moment to be closed.
        self.window = Some((t0, t0));
        self.to_open.clear();
        let left: Vec<(usize, Phase)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.phase != Phase::Answered)
            .map(|(k, c)| (k, c.phase))
            .collect();
        for (key, phase) in left {
            if phase == Phase::Trickling {
                self.result.survivors += 1;
            }
            self.finish(key);
        }
        let grace_end = Instant::now() + CLOSE_GRACE;
        while !self.conns.is_empty() && Instant::now() < grace_end {
            self.trickle_turn(grace_end);
        }
        let unclosed: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in unclosed {
            self.fail(
                key,
                format!("answered 408 but not closed within {} s", CLOSE_GRACE.as_secs()),
            );
        }
    }

    /// One poll (until `until` at the latest) and the bytes that are due.
    fn trickle_turn(&mut self, until: Instant) {
        self.trickle_due(Instant::now());
        let next = self
            .wakeups
            .peek()
            .map_or(until, |Reverse((t, _))| (*t).min(until));
        self.turn(Some(next.saturating_duration_since(Instant::now()).min(TURN)));
        self.trickle_due(Instant::now());
    }

    /// Sends the next byte of every connection whose time has come.
    fn trickle_due(&mut self, now: Instant) {
        while let Some(&Reverse((at, key))) = self.wakeups.peek() {
            if at > now {
                break;
            }
            self.wakeups.pop();
            self.send_byte(key, at, now);
        }
    }

    fn send_byte(&mut self, key: usize, at: Instant, now: Instant) {
        let Some(c) = self.conns.get_mut(key) else { return };
        // A wake-up of a connection that has left its slot since is not this one's.
        if c.phase != Phase::Trickling || c.next_byte != Some(at) {
            return;
        }
        if c.trickle.is_empty() {
            c.trickle.extend_from_slice(FILLER);
        }
        #[cfg(feature = "tls")]
        if c.tls.is_some() {
            // One byte, one TLS record (kept by rustls until its handshake is done).
            c.out.push(c.trickle.remove(0));
            self.flush(key);
            return self.next_byte(key, at, now);
        }
        match c.socket.write(&c.trickle[..1]) {
            Ok(1) => {
                c.trickle.drain(..1);
            }
            Ok(_) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            Err(e) => return self.fail(key, format!("write while trickling: {e}")),
        }
        self.next_byte(key, at, now);
    }

    /// Schedules the next byte of connection `key`, whose byte due `at` went out `now`.
    fn next_byte(&mut self, key: usize, at: Instant, now: Instant) {
        let delay = self.shared.opts.delay;
        let Some(c) = self.conns.get_mut(key) else { return };
        // After the first byte (sent at connect), each connection trickles at its own phase
        // within `delay`, as independent clients would, rather than in step with its connect
        // time: connects come in bursts, and bytes in step with them would make the attack (and
        // this generator's own work) a burst once per `delay`.
        let next = if at == c.started {
            let phase = self.rng.next() % (delay.as_nanos().max(1) as u64);
            now + Duration::from_nanos(phase)
        } else {
            now + delay
        };
        c.next_byte = Some(next);
        self.wakeups.push(Reverse((next, key)));
    }

    /// A connection is established: from now on it trickles.
    pub(super) fn start_trickle(&mut self, key: usize) {
        let now = Instant::now();
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
            self.shared.target, self.shared.host
        );
        let Some(c) = self.conns.get_mut(key) else { return };
        let connect_ns = now.duration_since(c.started).as_nanos() as u64;
        c.started = now;
        c.phase = Phase::Trickling;
        self.pending -= 1;
        c.trickle = request.into_bytes();
        c.next_byte = Some(now);
        self.wakeups.push(Reverse((now, key)));
        let _ = self.result.handshake_latency.record(connect_ns.max(1));
        self.result.connected += 1;
        let open = self.shared.open_now.fetch_add(1, Ordering::Relaxed) + 1;
        self.shared.peak.fetch_max(open, Ordering::Relaxed);
    }

    /// Reads what the server sent: the status line of its answer, then anything up to its close.
    pub(super) fn read_slowloris(&mut self, key: usize, scratch: &mut [u8]) {
        loop {
            let Some(c) = self.conns.get_mut(key) else { return };
            if c.phase == Phase::Connecting {
                return;
            }
            match c.socket.read(scratch) {
                Ok(0) => return self.slow_eof(key),
                Ok(n) => {
                    if !self.slowloris_input(key, &scratch[..n]) {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(key, format!("read: {e}")),
            }
        }
    }

    /// Bytes of the server's answer (decrypted, on a wss connection): its status line, then
    /// the rest, ignored. Returns false if the connection failed.
    pub(super) fn slowloris_input(&mut self, key: usize, input: &[u8]) -> bool {
        let Some(c) = self.conns.get_mut(key) else {
            return false;
        };
        if c.phase != Phase::Trickling {
            // The rest of the answer.
            return true;
        }
        let keep = input.len().min(MAX_STATUS_LINE.saturating_sub(c.leftover.len()));
        c.leftover.extend_from_slice(&input[..keep]);
        let Some(eol) = c.leftover.windows(2).position(|w| w == b"\r\n") else {
            if c.leftover.len() >= MAX_STATUS_LINE {
                self.fail(key, "an answer without a status line".to_owned());
                return false;
            }
            return true;
        };
        let line = String::from_utf8_lossy(&c.leftover[..eol]).into_owned();
        if !line.starts_with("HTTP/1.1 408 ") {
            self.fail(key, format!("expected a 408 answer, got {line:?}"));
            return false;
        }
        c.phase = Phase::Answered;
        c.leftover = Vec::new();
        let took = c.started.elapsed().as_nanos() as u64;
        let _ = self.result.latency.record(took.max(1));
        true
    }

    pub(super) fn slow_eof(&mut self, key: usize) {
        let Some(c) = self.conns.get(key) else { return };
        if c.phase != Phase::Answered {
            return self.fail(key, "closed by the server without an answer".to_owned());
        }
        let index = c.index;
        self.result.completed_clients += 1;
        self.finish(key);
        if self.window.is_none_or(|(_, end)| Instant::now() < end) {
            self.to_open.push_back(index);
        }
    }
}
