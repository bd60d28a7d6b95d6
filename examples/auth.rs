//! Authentication by another service, decided later: clients present a bearer token (an
//! `Authorization: Bearer ...` header, or `?token=...` from a browser, which cannot set headers
//! on a WebSocket); the shard leaves the handshake pending while a worker thread asks the
//! authentication service (a small HTTP service this example starts, answering in 20-100 ms);
//! the worker decides through `ServerHandle::decide`:
//!
//! - a good token: 101, and the user's name becomes the connection's state (echoes carry it);
//! - a bad or missing token: 401 with `WWW-Authenticate`;
//! - the service down, or slower than the handshake timeout allows: 503.
//!
//! The shard serves its other connections meanwhile. Tokens: `alice-token`, `bob-token`.
//!
//! `cargo run --release --example auth`, then open http://127.0.0.1:9002/.
//! Options: `--addr ADDR`, `--auth-addr ADDR` (use a running service instead of starting one),
//! `--handshake-timeout-ms N` (default 2000).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime};

use c10k::proto::{Message, Request};
use c10k::{ConnId, Ctx, Decision, Handler, HttpResponse, Server, ServerConfig, ServerHandle};

const PAGE: &str = include_str!("auth.html");

/// One handshake to decide: who asks, with what token, and where to answer.
struct Job {
    id: ConnId,
    token: String,
    server: ServerHandle,
}

/// The connection's state: the name the authentication service gave for its token.
#[derive(Default)]
struct User(String);

struct Auth {
    jobs: mpsc::Sender<Job>,
}

impl Handler for Auth {
    type State = User;

    fn on_handshake(&mut self, ctx: &mut Ctx<'_>, id: ConnId, req: &Request<'_>) -> Decision<User> {
        let Some(token) = token(req) else {
            return unauthorized("a bearer token is required\n", "Bearer realm=\"c10k\"");
        };
        let job = Job {
            id,
            token,
            server: ctx.server(),
        };
        match self.jobs.send(job) {
            Ok(()) => Decision::Pending,
            Err(_) => unavailable(),
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, user: &mut User, msg: Message<'_>) {
        let reply = format!("{}: {}", user.0, String::from_utf8_lossy(msg.as_bytes()));
        let _ = ctx.send_text(id, &reply);
    }

    fn on_http(&mut self, _ctx: &mut Ctx<'_>, req: &Request<'_>) -> HttpResponse {
        match req.path() {
            "/" => HttpResponse::html(200, PAGE),
            _ => HttpResponse::not_found(),
        }
    }
}

/// The bearer token of a request: the `Authorization` header, else the `token` query parameter.
fn token(req: &Request<'_>) -> Option<String> {
    let header = req
        .header("authorization")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let query = req
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
    header
        .or(query)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

fn unauthorized(body: &str, challenge: &str) -> Decision<User> {
    Decision::reject(401, body).with_header("WWW-Authenticate", challenge)
}

fn unavailable() -> Decision<User> {
    Decision::reject(503, "authentication service unavailable\n").with_header("Retry-After", "1")
}

/// Asks the authentication service about `token`, within `timeout`.
fn check(service: SocketAddr, token: &str, timeout: Duration) -> Decision<User> {
    let ask = || -> std::io::Result<(u16, String)> {
        let mut s = TcpStream::connect_timeout(&service, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        write!(
            s,
            "GET /check?token={token} HTTP/1.1\r\nHost: auth\r\nConnection: close\r\n\r\n"
        )?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        let status = answer.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").trim().to_owned();
        Ok((status, body))
    };
    match ask() {
        Ok((200, name)) => Decision::accept_with(User(name)),
        Ok((401, _)) => unauthorized(
            "invalid token\n",
            "Bearer realm=\"c10k\", error=\"invalid_token\"",
        ),
        Ok(_) | Err(_) => unavailable(),
    }
}

/// The authentication service: `GET /check?token=T` answers 200 with the user's name, or 401,
/// after 20 to 100 ms, as a service across the network would.
fn auth_service(listener: TcpListener) {
    for conn in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(&conn).read_line(&mut line);
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            std::thread::sleep(Duration::from_millis(20 + u64::from(nanos % 81)));
            let user = match line.split_whitespace().nth(1) {
                Some("/check?token=alice-token") => Some("alice"),
                Some("/check?token=bob-token") => Some("bob"),
                _ => None,
            };
            let answer = match user {
                Some(name) => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{name}", name.len()),
                None => "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".to_owned(),
            };
            let _ = (&conn).write_all(answer.as_bytes());
        });
    }
}

fn main() -> std::io::Result<()> {
    let mut addr: SocketAddr = "127.0.0.1:9002".parse().unwrap();
    let mut auth_addr: Option<SocketAddr> = None;
    let mut handshake_ms = 2000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_default();
        let bad = |e: &dyn std::fmt::Display| -> ! {
            eprintln!("auth: {a} {v:?}: {e}");
            std::process::exit(2)
        };
        match a.as_str() {
            "--addr" => addr = v.parse().unwrap_or_else(|e| bad(&e)),
            "--auth-addr" => auth_addr = Some(v.parse().unwrap_or_else(|e| bad(&e))),
            "--handshake-timeout-ms" => handshake_ms = v.parse().unwrap_or_else(|e| bad(&e)),
            _ => bad(&"unknown option (--addr, --auth-addr, --handshake-timeout-ms)"),
        }
    }
    let service = match auth_addr {
        Some(a) => a,
        None => {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let a = listener.local_addr()?;
            std::thread::spawn(move || auth_service(listener));
            a
        }
    };
    // Workers that call the service: a blocking call each, never on a shard's thread. The
    // service must answer well within the handshake timeout, or the client gets 503.
    let (jobs, queue) = mpsc::channel::<Job>();
    let queue = Arc::new(Mutex::new(queue));
    let call_timeout = Duration::from_millis(handshake_ms * 3 / 4);
    for _ in 0..16 {
        let queue = Arc::clone(&queue);
        std::thread::spawn(move || {
            while let Ok(job) = queue.lock().map_err(drop).and_then(|q| q.recv().map_err(drop)) {
                let decision = check(service, &job.token, call_timeout);
                job.server.decide(job.id, decision);
            }
        });
    }
    let mut config = ServerConfig::default();
    config.addr = addr;
    config.handshake_timeout = Duration::from_millis(handshake_ms);
    let server = Server::bind(config, move |_shard| Auth { jobs: jobs.clone() })?;
    println!(
        "auth: listening on ws://{}/ (authentication service on {service})",
        server.local_addr()
    );
    server.run()
}
