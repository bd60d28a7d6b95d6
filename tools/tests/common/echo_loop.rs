//! Echo clients that run beside a test: each opens a connection, checks one echo on it and
//! closes it, over and over, counting what happened, while the test does something to the server.
//!
//! Included with `#[path = "common/echo_loop.rs"] mod echo_loop;`.
#![allow(dead_code)]

use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use c10k::client::{Client, ClientConfig, ClientError, Received};

/// Clients that each open a connection, check one echo on it and close it, over and over, until
/// stopped (at most 20,000 rounds or 60 s each), counting echoes answered, connections refused,
/// and other failures.
pub struct EchoLoop {
    stop: Arc<AtomicBool>,
    /// Echoes answered, connections refused, other failures.
    counts: Arc<[AtomicU64; 3]>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl EchoLoop {
    pub fn start(url: &str, threads: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
        let threads = (0..threads)
            .map(|t| {
                let (url, stop, counts) = (url.to_owned(), Arc::clone(&stop), Arc::clone(&counts));
                std::thread::spawn(move || {
                    let config = ClientConfig {
                        timeout: Some(Duration::from_secs(5)),
                        ..ClientConfig::default()
                    };
                    let deadline = Instant::now() + Duration::from_secs(60);
                    for n in 0..20_000 {
                        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                            break;
                        }
                        let text = format!("echo {t}.{n}");
                        let outcome = match Client::connect_with(&url, &config) {
                            Err(ClientError::Io(e)) if e.kind() == ErrorKind::ConnectionRefused => 1,
                            Err(_) => 2,
                            Ok(mut c) => match c.send_text(&text).and_then(|()| c.recv_message()) {
                                Ok(Received::Text(t)) if t == text => 0,
                                _ => 2,
                            },
                        };
                        counts[outcome].fetch_add(1, Ordering::Relaxed);
                        // A few hundred connections a second: enough to see every pause, few
                        // enough that ports in TIME_WAIT never run out.
                        std::thread::sleep(Duration::from_millis(5));
                    }
                })
            })
            .collect();
        Self {
            stop,
            counts,
            threads,
        }
    }

    pub fn answered(&self) -> u64 {
        self.counts[0].load(Ordering::Relaxed)
    }

    /// Stops the clients; returns (answered, refused, failed).
    pub fn stop(self) -> (u64, u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let [a, r, f] = &*self.counts;
        (
            a.load(Ordering::Relaxed),
            r.load(Ordering::Relaxed),
            f.load(Ordering::Relaxed),
        )
    }
}
