//! The bystanders: well-behaved connections that go on talking to the server during an attack,
//! each sending a small message every [`PROBE_EVERY`] and waiting for its answer, in a thread of
//! their own. Their round trips are recorded in two histograms, before the attack (the baseline)
//! and during it; a bystander that is refused, closed, answered wrongly or not within
//! [`REPLY_TIMEOUT`] is an error of the run.
//!
//! What a bystander sends depends on the application: an echo server returns the message; a
//! pubsub server answers `sync X` with `sync X`; in chat mode each bystander is alone in a room
//! of its own (`/chat/c10k-bystander-N`), so that its message comes back to it alone.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use c10k::proto::OpCode;
use hdrhistogram::Histogram;

use super::App;
use super::fleet::{Fleet, News};
use super::frames;
use super::peer::{Opening, Spec, Stage};
use super::target::Target;
use crate::loadgen::{Percentiles, latency_histogram};

/// How often each bystander sends a message.
pub const PROBE_EVERY: Duration = Duration::from_millis(250);
/// A message not answered within this time is an error, and ends its bystander.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest wait for the bystanders to open.
const OPEN_WAIT: Duration = Duration::from_secs(10);
/// Most error samples kept.
const MAX_SAMPLES: usize = 5;

/// What the bystanders measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BystanderReport {
    /// Bystanders asked for.
    pub connections: usize,
    /// Round trips before the attack.
    pub base: Percentiles,
    /// Round trips during the attack.
    pub attack: Percentiles,
    /// Errors: bystanders that failed to open, were closed, got a wrong or late answer.
    pub errors: u64,
    /// The first few errors.
    pub samples: Vec<String>,
}

/// The bystanders' thread.
#[derive(Debug)]
pub(crate) struct Bystanders {
    attack: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<BystanderReport>,
}

impl Bystanders {
    /// Opens `n` bystanders and returns once every one is open (or has failed). Fails when
    /// none could open.
    pub(crate) fn start(target: &Target, n: usize, app: App) -> Result<Self, String> {
        let attack = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut run = Run {
            fleet: Fleet::new(target, 0xb157).map_err(|e| e.to_string())?,
            app,
            path: target.path.clone(),
            who: HashMap::new(),
            slots: Vec::new(),
            base: latency_histogram(),
            during: latency_histogram(),
            report: BystanderReport {
                connections: n,
                ..BystanderReport::default()
            },
            attack: Arc::clone(&attack),
        };
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("c10k-attack-bystanders".into())
            .spawn(move || {
                let open = run.open(n);
                let _ = ready_tx.send((open, run.report.samples.clone()));
                run.talk(&flag);
                run.finish()
            })
            .map_err(|e| e.to_string())?;
        match ready_rx.recv_timeout(OPEN_WAIT + Duration::from_secs(5)) {
            Ok((0, samples)) if n > 0 => {
                stop.store(true, Ordering::Release);
                let _ = handle.join();
                Err(format!("no bystander could open: {}", samples.join("; ")))
            }
            Ok(_) => Ok(Self { attack, stop, handle }),
            Err(_) => {
                stop.store(true, Ordering::Release);
                Err("the bystanders did not open".to_owned())
            }
        }
    }

    /// From now on, round trips count as during the attack.
    pub(crate) fn attack_phase(&self) {
        self.attack.store(true, Ordering::Release);
    }

    /// Ends the bystanders and returns what they measured.
    pub(crate) fn stop(self) -> BystanderReport {
        self.stop.store(true, Ordering::Release);
        self.handle.join().unwrap_or_else(|_| BystanderReport {
            errors: 1,
            samples: vec!["the bystanders' thread panicked".to_owned()],
            ..BystanderReport::default()
        })
    }
}

/// One bystander: its connection, its next send, the message in flight.
#[derive(Debug)]
struct Slot {
    key: Option<usize>,
    next: Instant,
    seq: u64,
    /// The message awaited, when it was sent, and whether the attack was on then.
    inflight: Option<(Vec<u8>, Instant, bool)>,
}

/// The bystanders' state, owned by their thread.
struct Run {
    fleet: Fleet,
    app: App,
    path: String,
    /// Slot index by connection key.
    who: HashMap<usize, usize>,
    slots: Vec<Slot>,
    base: Histogram<u64>,
    during: Histogram<u64>,
    report: BystanderReport,
    attack: Arc<AtomicBool>,
}

impl Run {
    /// Opens `n` bystanders; returns how many opened.
    fn open(&mut self, n: usize) -> usize {
        let now = Instant::now();
        for i in 0..n {
            let path = match self.app {
                App::Chat => format!("/chat/c10k-bystander-{i}"),
                _ => self.path.clone(),
            };
            self.fleet.add(Spec {
                opening: Opening::Upgrade {
                    deflate: false,
                    path: Some(path),
                },
                rcvbuf: None,
                role: "",
                from_source: false,
            });
            // Spread over the interval, so that the bystanders do not send in step.
            let offset = PROBE_EVERY.mul_f64(i as f64 / n.max(1) as f64);
            self.slots.push(Slot {
                key: None,
                next: now + offset,
                seq: 0,
                inflight: None,
            });
        }
        let end = now + OPEN_WAIT;
        let mut pending: Vec<usize> = (0..n).collect();
        let mut open = 0u64;
        while open + self.report.errors < n as u64 && Instant::now() < end {
            for news in self.fleet.turn(Duration::from_millis(20)) {
                match news {
                    News::Open(key) => {
                        if let Some(i) = pending.pop() {
                            // Keys are assigned in order of opening; any free slot will do.
                            self.slots[i].key = Some(key);
                            self.who.insert(key, i);
                            if let Some(p) = self.fleet.peer(key) {
                                p.keep_messages = true;
                            }
                            open += 1;
                        }
                    }
                    News::Gone(key, _, answer) => match self.who.remove(&key) {
                        Some(i) => {
                            self.slots[i].key = None;
                            self.error(format!("a bystander was ended: {}", describe(&answer)));
                        }
                        None => {
                            pending.pop();
                            self.error(format!("a bystander could not open: {}", describe(&answer)));
                        }
                    },
                    _ => {}
                }
            }
        }
        for _ in pending.drain(..) {
            self.error(format!(
                "a bystander did not open within {} s",
                OPEN_WAIT.as_secs()
            ));
        }
        // The ones still opening are left out.
        for key in self.fleet.keys_in(Stage::Http) {
            self.fleet.finish(key, super::peer::Answer::NoAnswer);
        }
        self.fleet.turn(Duration::ZERO);
        self.who.len()
    }

    /// Sends and checks until told to stop.
    fn talk(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Acquire) {
            let now = Instant::now();
            let mut wake = now + Duration::from_millis(50);
            for i in 0..self.slots.len() {
                let Some(key) = self.slots[i].key else { continue };
                if let Some((_, sent, _)) = &self.slots[i].inflight {
                    if now.duration_since(*sent) > REPLY_TIMEOUT {
                        self.fail(i, format!("no answer within {} s", REPLY_TIMEOUT.as_secs()));
                    }
                    continue;
                }
                if now >= self.slots[i].next {
                    self.probe(i, key, now);
                } else {
                    wake = wake.min(self.slots[i].next);
                }
            }
            let news = self.fleet.turn(wake.saturating_duration_since(Instant::now()));
            for n in news {
                match n {
                    News::Message(key, bytes) => self.answer(key, bytes),
                    News::Gone(key, _, answer) => {
                        if let Some(i) = self.who.remove(&key) {
                            self.slots[i].key = None;
                            self.error(format!("a bystander was ended: {}", describe(&answer)));
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn probe(&mut self, i: usize, key: usize, now: Instant) {
        let slot = &mut self.slots[i];
        slot.seq += 1;
        let text = format!("c10k-bystander {i} {}", slot.seq);
        let (sent, expect) = match self.app {
            App::PubSub => (format!("sync {text}"), format!("sync {text}")),
            App::Echo | App::Chat => (text.clone(), text),
        };
        slot.inflight = Some((expect.into_bytes(), now, self.attack.load(Ordering::Acquire)));
        slot.next = now + PROBE_EVERY;
        let mut out = Vec::new();
        frames::push_frame(
            &mut out,
            &mut self.fleet.keys,
            true,
            0,
            OpCode::Text,
            sent.as_bytes(),
        );
        self.fleet.send(key, &out);
    }

    fn answer(&mut self, key: usize, bytes: Option<Vec<u8>>) {
        let Some(&i) = self.who.get(&key) else { return };
        let Some((expect, sent, attack)) = self.slots[i].inflight.take() else {
            return self.fail(i, "a message nobody asked for".to_owned());
        };
        if bytes.as_deref() != Some(expect.as_slice()) {
            let got = bytes.map_or_else(
                || "a long message".to_owned(),
                |b| format!("{:?}", String::from_utf8_lossy(&b)),
            );
            return self.fail(
                i,
                format!("answered {got}, not {:?}", String::from_utf8_lossy(&expect)),
            );
        }
        let ns = sent.elapsed().as_nanos() as u64;
        let h = if attack { &mut self.during } else { &mut self.base };
        let _ = h.record(ns.max(1));
    }

    /// Bystander `i` failed: an error, and its connection ends.
    fn fail(&mut self, i: usize, why: String) {
        self.error(format!("bystander {i}: {why}"));
        if let Some(key) = self.slots[i].key.take() {
            self.who.remove(&key);
            self.fleet.finish(key, super::peer::Answer::Open);
        }
    }

    fn error(&mut self, why: String) {
        self.report.errors += 1;
        if self.report.samples.len() < MAX_SAMPLES {
            self.report.samples.push(why);
        }
    }

    fn finish(mut self) -> BystanderReport {
        self.report.base = Percentiles::of(&self.base);
        self.report.attack = Percentiles::of(&self.during);
        let keys: Vec<usize> = self.slots.iter().filter_map(|s| s.key).collect();
        for key in keys {
            self.fleet.close(key, 1000);
        }
        drop(self.fleet.drain(Duration::from_millis(500)));
        self.report
    }
}

/// An answer as a bystander's error says it.
fn describe(answer: &super::peer::Answer) -> String {
    let detail = answer.detail();
    if detail.is_empty() {
        answer.label()
    } else {
        format!("{} ({detail})", answer.label())
    }
}
