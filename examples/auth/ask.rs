//! One call to the authentication service: `GET /check?token=T` (the token percent-encoded),
//! under one deadline for the whole call (connect, write, read), with a bound on the answer's
//! size, given up as soon as the handshake it is for stops waiting. The socket is closed on
//! every path (it is dropped when [`ask`] returns).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use c10k::{ConnId, ServerHandle};

use crate::percent;

/// The most bytes of the service's answer (head and body) read; a longer answer fails the call
/// (503 for the client), whatever it says.
pub const MAX_ANSWER_BYTES: usize = 4096;

/// How often a call waiting for the service looks whether its handshake still waits (the
/// client may have left, or been answered 503 at its deadline): a call for nobody ends within
/// this much.
pub const PENDING_CHECK: Duration = Duration::from_millis(50);

/// How a call ended.
#[derive(Debug)]
pub enum Outcome {
    /// The service answered with this status and body.
    Answer(u16, Vec<u8>),
    /// The handshake stopped waiting during the call: nobody needs its answer any more.
    Abandoned,
    /// No usable answer by the deadline: the service is down, too slow, or said too much or
    /// something that is not HTTP.
    Failed,
}

/// Asks the service at `service` about `token` for the pending handshake `id`, by `deadline`.
pub fn ask(
    service: SocketAddr,
    token: &[u8],
    server: &ServerHandle,
    id: ConnId,
    deadline: Instant,
) -> Outcome {
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    };
    let Some(d) = left() else {
        return Outcome::Failed;
    };
    let Ok(mut s) = TcpStream::connect_timeout(&service, d) else {
        return Outcome::Failed;
    };
    let request = format!(
        "GET /check?token={} HTTP/1.1\r\nHost: auth\r\nConnection: close\r\n\r\n",
        percent::encode(token)
    );
    let wrote = left()
        .ok_or_else(|| std::io::Error::from(ErrorKind::TimedOut))
        .and_then(|d| s.set_write_timeout(Some(d)))
        .and_then(|()| s.write_all(request.as_bytes()));
    if wrote.is_err() {
        return Outcome::Failed;
    }
    let mut answer = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some((status, body)) = complete(&answer, false) {
            return Outcome::Answer(status, body.to_vec());
        }
        if !server.is_pending(id) {
            return Outcome::Abandoned;
        }
        let Some(d) = left() else {
            return Outcome::Failed;
        };
        if s.set_read_timeout(Some(d.min(PENDING_CHECK))).is_err() {
            return Outcome::Failed;
        }
        match s.read(&mut chunk) {
            Ok(0) => {
                return complete(&answer, true).map_or(Outcome::Failed, |(status, body)| {
                    Outcome::Answer(status, body.to_vec())
                });
            }
            Ok(n) if answer.len() + n > MAX_ANSWER_BYTES => return Outcome::Failed,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return Outcome::Failed,
        }
    }
}

/// The status and body of `answer` once it is whole: its head is complete and its body has
/// `Content-Length` bytes, or, without that header, the service closed (`closed`).
fn complete(answer: &[u8], closed: bool) -> Option<(u16, &[u8])> {
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&answer[..end]).ok()?;
    let body = &answer[end + 4..];
    let mut lines = head.split("\r\n");
    let mut status_line = lines.next()?.split(' ');
    let version = status_line.next()?;
    let code = status_line.next()?;
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return None;
    }
    let status = code.parse().ok()?;
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.trim().parse::<usize>());
    match length {
        Some(Ok(n)) if body.len() >= n => Some((status, &body[..n])),
        Some(Ok(_)) => None,
        Some(Err(_)) => None,
        None if closed => Some((status, body)),
        None => None,
    }
}
