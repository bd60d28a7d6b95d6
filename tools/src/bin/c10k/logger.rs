//! A small logger for the `log` facade: one logfmt line per record on stderr,
//! `ts=SECONDS.MILLIS level=LEVEL [worker=I] target=MODULE msg="..."`, so that lines can be
//! filtered and parsed by field. Workers of a supervisor add their index (`C10K_WORKER`).

use std::fmt::Write as _;
use std::io::Write;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

struct Stderr;

/// ` worker=I` for a worker process, empty otherwise.
static WORKER: OnceLock<String> = OnceLock::new();

impl log::Log for Stderr {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut line = format!(
            "ts={}.{:03} level={}{} target={} msg=\"",
            now.as_secs(),
            now.subsec_millis(),
            record.level().as_str().to_ascii_lowercase(),
            WORKER.get().map_or("", String::as_str),
            record.target(),
        );
        let msg = record.args().to_string();
        for c in msg.chars() {
            match c {
                '"' => line.push_str("\\\""),
                '\\' => line.push_str("\\\\"),
                '\n' => line.push_str("\\n"),
                c => line.push(c),
            }
        }
        line.push_str("\"\n");
        // One write per line: worker processes share the supervisor's stderr, and a line written
        // in pieces would be interleaved with theirs.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

static LOGGER: Stderr = Stderr;

/// Installs the logger at `level`.
pub fn init(level: log::LevelFilter) {
    let mut worker = String::new();
    if let Ok(w) = std::env::var("C10K_WORKER") {
        let _ = write!(worker, " worker={w}");
    }
    let _ = WORKER.set(worker);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}
