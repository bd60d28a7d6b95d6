//! The network driver: one mio loop running many sequences at once, each on a fresh connection.
//!
//! For each sequence it writes the request and the frames in the pieces the sequence's cuts say
//! (pausing after a piece when asked), reads what the server sends, hands the server's 101 to
//! the oracle (the expectation depends on whether permessage-deflate was agreed), decodes the
//! server's frames with a client-role connection of the core, and feeds them to the judges. A
//! sequence ends when its outcome is known, or when its time bound passes.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use c10k::proto::handshake::Expected;
use c10k::proto::{Connection, Role};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

pub(crate) mod answers;

use super::judge::{Judge, Judges, Outcome};
use super::oracle::{self, HandshakeWant};
use super::sequence::{Sequence, deflate_policy, request};
use crate::check::{Target, Verdict};
use answers::{frames, opening};

/// How the driver runs sequences.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The server's message size limit, if known (the oracle's limit).
    pub max_message: Option<usize>,
    /// How long a sequence may take beyond its own pauses before it is "no progress".
    pub bound: Duration,
}

/// One sequence in flight.
struct Conn {
    index: u64,
    seq: Sequence,
    socket: TcpStream,
    connected: bool,
    stream: Vec<u8>,
    head_len: usize,
    /// The frames are in `stream` (after the 101, or at once when pipelined).
    frames_ready: bool,
    written: usize,
    next_cut: usize,
    resume_at: Option<Instant>,
    expected: Expected,
    want: HandshakeWant,
    opened: bool,
    inbuf: Vec<u8>,
    client: Option<Connection>,
    judges: Option<Judges>,
    deadline: Instant,
    outcome: Option<Outcome>,
}

/// A mio loop over up to `parallel` connections.
pub struct Driver {
    target: Target,
    settings: Settings,
    poll: Poll,
    events: Events,
    conns: Slab<Conn>,
    parallel: usize,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("target", &self.target)
            .field("in_flight", &self.conns.len())
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// A driver for `target` running up to `parallel` sequences at once.
    pub fn new(target: Target, settings: Settings, parallel: usize) -> io::Result<Self> {
        Ok(Self {
            target,
            settings,
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            conns: Slab::with_capacity(parallel.max(1)),
            parallel: parallel.max(1),
            scratch: vec![0; 256 << 10],
        })
    }

    /// Runs sequences from `next` until it returns `None` (or `on_done` returns false) and every
    /// sequence started has ended; `on_done` sees each with its outcome.
    pub fn run(
        &mut self,
        mut next: impl FnMut() -> Option<(u64, Sequence)>,
        mut on_done: impl FnMut(u64, &Sequence, Outcome) -> bool,
    ) {
        let mut more = true;
        loop {
            while more && self.conns.len() < self.parallel {
                match next() {
                    Some((index, seq)) => {
                        if let Err(failed) = self.start(index, seq) {
                            let (outcome, seq) = *failed;
                            more &= on_done(index, &seq, outcome);
                        }
                    }
                    None => more = false,
                }
            }
            if self.conns.is_empty() {
                return;
            }
            self.turn();
            let done: Vec<usize> = self
                .conns
                .iter()
                .filter(|(_, c)| c.outcome.is_some())
                .map(|(k, _)| k)
                .collect();
            for key in done {
                // Closing the socket takes it out of the epoll set: no deregister call.
                let mut c = self.conns.remove(key);
                if let Some(outcome) = c.outcome.take() {
                    more &= on_done(c.index, &c.seq, outcome);
                }
            }
        }
    }

    /// Runs one sequence alone.
    pub fn run_one(&mut self, seq: &Sequence) -> Outcome {
        let mut result = None;
        let mut first = Some((0, seq.clone()));
        self.run(
            || first.take(),
            |_, _, o| {
                result = Some(o);
                true
            },
        );
        result.unwrap_or_else(|| unreachable_outcome("the sequence did not run".to_owned()))
    }

    fn start(&mut self, index: u64, seq: Sequence) -> Result<(), Box<(Outcome, Sequence)>> {
        let mut socket = match TcpStream::connect(self.target.addr) {
            Ok(s) => s,
            Err(e) => {
                let why = format!("cannot connect to {}: {e}", self.target.addr);
                return Err(Box::new((unreachable_outcome(why), seq)));
            }
        };
        let _ = socket.set_nodelay(true);
        let (head, expected) = request(&seq.opening, &self.target.host, &self.target.path);
        let want = oracle::handshake(&head);
        let head_len = head.len();
        let pauses: u64 = seq.cuts.iter().map(|c| u64::from(c.pause_us)).sum();
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut socket, Token(key), Interest::READABLE | Interest::WRITABLE)
        {
            return Err(Box::new((unreachable_outcome(format!("register: {e}")), seq)));
        }
        let mut c = Conn {
            index,
            seq,
            socket,
            connected: false,
            stream: head,
            head_len,
            frames_ready: false,
            written: 0,
            next_cut: 0,
            resume_at: None,
            expected,
            want,
            opened: false,
            inbuf: Vec::new(),
            client: None,
            judges: None,
            deadline: Instant::now() + self.settings.bound + Duration::from_micros(pauses),
            outcome: None,
        };
        if want == HandshakeWant::Accept && c.seq.opening.pipelined && !c.seq.opening.deflate {
            prepare_frames(&mut c, &self.settings, None);
        }
        entry.insert(c);
        Ok(())
    }

    fn turn(&mut self) {
        let now = Instant::now();
        let wake = self
            .conns
            .iter()
            .flat_map(|(_, c)| [Some(c.deadline), c.resume_at])
            .flatten()
            .min();
        let timeout = wake.map(|w| w.saturating_duration_since(now));
        if let Err(e) = self.poll.poll(&mut self.events, timeout)
            && e.kind() != io::ErrorKind::Interrupted
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        let ready: Vec<(usize, bool, bool, bool)> = self
            .events
            .iter()
            .map(|e| {
                let hup = e.is_read_closed() || e.is_error();
                (e.token().0, e.is_writable(), e.is_readable() || hup, hup)
            })
            .collect();
        for (key, writable, readable, hup) in ready {
            let Some(c) = self.conns.get_mut(key) else {
                continue;
            };
            if (writable || readable) && !c.connected {
                // On Linux the first readiness of a connecting socket means connected or
                // failed; a failure shows in SO_ERROR (one system call, no getpeername).
                match c.socket.take_error() {
                    Ok(None) => c.connected = true,
                    Ok(Some(e)) | Err(e) => {
                        c.outcome = Some(unreachable_outcome(format!("cannot connect: {e}")));
                        continue;
                    }
                }
            }
            if readable && c.connected {
                read(c, &self.settings, &mut self.scratch, hup);
            }
            if c.connected && c.outcome.is_none() {
                pump(c);
            }
        }
        let now = Instant::now();
        for (_, c) in self.conns.iter_mut() {
            if c.outcome.is_some() {
                continue;
            }
            if c.resume_at.is_some_and(|t| t <= now) {
                c.resume_at = None;
                if c.connected {
                    pump(c);
                }
            }
            if c.deadline <= now && c.outcome.is_none() {
                timed_out(c, &self.settings);
            }
        }
    }
}

fn unreachable_outcome(reason: String) -> Outcome {
    Outcome::new(
        Verdict::Fail,
        "unreachable",
        "a connection".to_owned(),
        "the server accepts connections".to_owned(),
        format!("server stopped accepting connections: {reason}"),
    )
}

/// Runs the oracle and puts the frames to send in the stream.
fn prepare_frames(c: &mut Conn, settings: &Settings, deflate: Option<c10k::proto::DeflateParams>) {
    let negotiated = deflate.map(|p| p.negotiated(Role::Server, &deflate_policy()));
    let expectation = oracle::expect(&c.seq.frames, settings.max_message, negotiated);
    c.stream.extend_from_slice(&expectation.bytes);
    c.frames_ready = true;
    c.judges = Some(Judges(
        expectation.alternatives.into_iter().map(Judge::new).collect(),
    ));
}

/// Writes what may be written now: up to the next cut (then pauses), never past the request
/// before the frames are ready.
fn pump(c: &mut Conn) {
    while c.resume_at.is_none() {
        let limit = if c.frames_ready {
            c.stream.len()
        } else {
            c.head_len
        };
        if c.written >= limit {
            if c.frames_ready
                && let Some(j) = &mut c.judges
            {
                j.each(Judge::all_sent);
                c.outcome = c.outcome.take().or_else(|| j.outcome());
            }
            return;
        }
        while c.next_cut < c.seq.cuts.len() && c.seq.cuts[c.next_cut].at <= c.written {
            c.next_cut += 1;
        }
        let cut = c.seq.cuts.get(c.next_cut).copied();
        let end = cut.map_or(limit, |k| k.at.min(limit));
        match c.socket.write(&c.stream[c.written..end]) {
            Ok(0) => return,
            Ok(n) => {
                c.written += n;
                if let Some(k) = cut
                    && c.written == k.at
                {
                    c.next_cut += 1;
                    if k.pause_us > 0 {
                        c.resume_at = Some(Instant::now() + Duration::from_micros(u64::from(k.pause_us)));
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // The server closed: what it said is judged by the reading side.
            Err(_) => {
                c.written = c.stream.len();
            }
        }
    }
}

/// Reads what the server sent; `hup`: the peer closed or failed, so read on to the end.
fn read(c: &mut Conn, settings: &Settings, scratch: &mut [u8], hup: bool) {
    let mut ended: Option<&str> = None;
    loop {
        match c.socket.read(scratch) {
            Ok(0) => {
                ended = Some("closed the connection");
                break;
            }
            Ok(n) => {
                c.inbuf.extend_from_slice(&scratch[..n]);
                // A short read drained the socket: the next bytes bring a new edge, so there
                // is no read to see EAGAIN (as the engine does).
                if n < scratch.len() && !hup {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                ended = Some("reset the connection");
                break;
            }
        }
    }
    if !c.opened {
        opening(c, settings);
    }
    if c.opened && c.outcome.is_none() {
        frames(c);
    }
    if let Some(how) = ended
        && c.outcome.is_none()
    {
        if !c.opened {
            c.outcome = Some(match c.want {
                HandshakeWant::Accept => Outcome::new(
                    Verdict::Fail,
                    "dropped-valid-handshake",
                    "handshake 101".to_owned(),
                    "101 Switching Protocols".to_owned(),
                    format!("{how} without answering a valid upgrade request"),
                ),
                want => Outcome::new(
                    Verdict::NonStrict,
                    "dropped-without-status",
                    format!("handshake {}", want.status().unwrap_or(400)),
                    format!("HTTP {}", want.status().unwrap_or(400)),
                    format!("{how} without an HTTP answer to an invalid upgrade request"),
                ),
            });
            return;
        }
        if let Some(j) = &mut c.judges {
            j.each(|j| j.dropped(how));
            c.outcome = j.outcome();
        }
    }
}

fn timed_out(c: &mut Conn, settings: &Settings) {
    let ms = settings.bound.as_millis() as u64;
    if !c.opened {
        let (cause, expected) = match c.want {
            HandshakeWant::Accept => ("handshake 101".to_owned(), "101".to_owned()),
            want => {
                let s = want.status().unwrap_or(400);
                (format!("handshake {s}"), format!("HTTP {s}"))
            }
        };
        c.outcome = Some(Outcome::new(
            Verdict::Fail,
            "no-progress",
            cause,
            expected,
            format!("no answer to the upgrade request within {ms} ms"),
        ));
        return;
    }
    if let Some(j) = &mut c.judges {
        j.each(|j| j.timed_out(ms));
        c.outcome = j.outcome();
    }
}
