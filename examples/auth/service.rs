//! The authentication service the example starts when it is not given one (`--auth-addr`): a
//! stand-in for a service across the network. `GET /check?token=T`, the token percent-encoded,
//! answers 200 with the user's name or 401, after 20 to 100 ms. A token `slow-MS-anything` is
//! answered (401) after MS milliseconds, at most [`MAX_DELAY`]: a slow service on demand.
//!
//! A call whose caller hangs up while it waits ends there, so that a caller that gave up holds
//! nothing here. Bounded: [`MAX_CALLS`] calls at once (past it, 503 at once), a request line
//! of at most [`MAX_REQUEST_LINE`] bytes read within [`REQUEST_TIMEOUT`].

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::percent;

/// Calls served at once (a thread each); past it, a new call is answered 503 at once.
pub const MAX_CALLS: usize = 64;
/// The longest request line read; the rest of a longer one is not read (the token is cut, and
/// so refused). Room for any token a request head within the engine's default limit (8 KiB)
/// can carry, each of its bytes percent-encoded (three).
pub const MAX_REQUEST_LINE: u64 = 32 << 10;
/// Time allowed to send the request line.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest wait a `slow-MS-` token asks for.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Serves calls from `listener`, forever.
pub fn serve(listener: TcpListener) {
    let calls = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming().flatten() {
        if calls.fetch_add(1, Ordering::AcqRel) >= MAX_CALLS {
            calls.fetch_sub(1, Ordering::AcqRel);
            let _ = (&conn).write_all(BUSY);
            continue;
        }
        let running = Arc::clone(&calls);
        let spawned = std::thread::Builder::new()
            .name("auth-service".to_owned())
            .spawn(move || {
                answer(&conn);
                running.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            calls.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Reads one request from `conn`, waits as the token says, answers (unless the caller left).
fn answer(conn: &TcpStream) {
    if conn.set_read_timeout(Some(REQUEST_TIMEOUT)).is_err() {
        return;
    }
    let mut line = Vec::new();
    if BufReader::new(conn.take(MAX_REQUEST_LINE))
        .read_until(b'\n', &mut line)
        .is_err()
    {
        return;
    }
    let line = String::from_utf8_lossy(&line);
    let target = line.split(' ').nth(1).unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let token = percent::query_param(query, "token").unwrap_or_default();
    if !wait(conn, delay(&token)) {
        return;
    }
    let user = match token.as_slice() {
        _ if path != "/check" => None,
        b"alice-token" => Some("alice"),
        b"bob-token" => Some("bob"),
        _ => None,
    };
    let answer = match user {
        Some(name) => format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
            name.len()
        ),
        None => "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
    };
    let _ = (&*conn).write_all(answer.as_bytes());
}

/// How long to think about `token`: what a `slow-MS-` token asks for, else 20 to 100 ms.
fn delay(token: &[u8]) -> Duration {
    let asked = token
        .strip_prefix(b"slow-")
        .and_then(|rest| rest.split(|&b| b == b'-').next())
        .and_then(|ms| std::str::from_utf8(ms).ok()?.parse().ok());
    if let Some(ms) = asked {
        return Duration::from_millis(ms).min(MAX_DELAY);
    }
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    Duration::from_millis(20 + u64::from(nanos % 81))
}

/// Waits `delay`, unless the caller hangs up first: true if it is still there.
fn wait(mut conn: &TcpStream, delay: Duration) -> bool {
    let end = Instant::now() + delay;
    let mut sink = [0u8; 512];
    loop {
        let Some(left) = end
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
        else {
            return true;
        };
        if conn.set_read_timeout(Some(left)).is_err() {
            return false;
        }
        match conn.read(&mut sink) {
            // The rest of the request: not needed.
            Ok(n) if n > 0 => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Ok(_) | Err(_) => return false,
        }
    }
}
