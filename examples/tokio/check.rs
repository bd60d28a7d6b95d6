//! The runtime's side of a handshake: a task takes the asks from the shards, and for each one a
//! task calls the authentication service with hyper (`GET URL`, `Authorization: Bearer TOKEN`)
//! and decides through the `ServerHandle`:
//!
//! - 200 with a name: accepted, the name becomes the connection's state;
//! - 401: refused (401 with `WWW-Authenticate`);
//! - anything else, no answer by the call's deadline, or an answer over [`MAX_ANSWER_BYTES`]:
//!   503 with `Retry-After`.
//!
//! Bounds: at most `--calls` calls at once (default [`DEFAULT_CALLS`]); while they are all
//! taken, asks wait in the shards' channel, and once that is full the shards answer 503
//! themselves. A call ends by three quarters of the handshake timeout after the request came,
//! and sooner when its handshake stops waiting (the client left), looked at every
//! [`PENDING_CHECK`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use c10k::{Decision, ServerHandle};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, HeaderValue};
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;
use tokio::sync::mpsc::Receiver;

use crate::front::{Ask, User, unauthorized, unavailable};

/// Calls to the service at once. Each is a task and, while the pool has none idle, a socket.
pub const DEFAULT_CALLS: usize = 64;
/// The most bytes of an answer's body read; a longer one fails the call (503).
pub const MAX_ANSWER_BYTES: usize = 4096;
/// How often a call looks whether its handshake still waits: a call for a client that left
/// ends within this much.
pub const PENDING_CHECK: Duration = Duration::from_millis(50);
/// The least time worth a call: an ask with less left before its deadline is answered 503
/// without one (it waited too long in the channel).
pub const MIN_CALL: Duration = Duration::from_millis(20);
/// Connections to the service kept open between calls, and for how long: a handshake then
/// costs the service one request, not a TCP handshake too.
const POOL_IDLE: usize = 32;
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// Where and how to call, shared by the calls.
pub struct Service {
    pub url: Uri,
    pub client: HttpClient,
    /// The engine's handshake timeout: the calls end before it.
    pub handshake_timeout: Duration,
    pub server: ServerHandle,
}

/// A client for the service: pooled connections, each opened within the call's deadline (the
/// connector's own timeout is only a backstop).
pub fn client(handshake_timeout: Duration) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(handshake_timeout));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(POOL_IDLE)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(connector)
}

/// Takes asks until every shard is gone, `calls` at a time.
pub async fn serve(mut asks: Receiver<Ask>, service: Arc<Service>, calls: usize) {
    let running = Arc::new(Semaphore::new(calls));
    loop {
        // A permit first: while every call is taken, asks stay in the channel, whose bound
        // then turns new handshakes away at the shard.
        let Ok(permit) = Arc::clone(&running).acquire_owned().await else {
            return;
        };
        let Some(ask) = asks.recv().await else {
            return;
        };
        let service = Arc::clone(&service);
        tokio::spawn(async move {
            decide(&service, ask).await;
            drop(permit);
        });
    }
}

/// How a call ended.
enum Outcome {
    Answer(StatusCode, Bytes),
    /// The token cannot travel in a header (control bytes): no service would accept it.
    Unsendable,
    Failed,
}

/// Calls the service for `ask` and decides its handshake, unless the handshake stopped waiting.
async fn decide(service: &Service, ask: Ask) {
    let server = &service.server;
    if !server.is_pending(ask.id) {
        return;
    }
    // The shard counts its timeout from the accept, a little earlier; the last quarter is the
    // margin for the decision to reach it.
    let deadline = ask.received + service.handshake_timeout / 4 * 3;
    if deadline.saturating_duration_since(Instant::now()) < MIN_CALL {
        server.decide(ask.id, unavailable());
        return;
    }
    // The call runs as a task of its own so that this one can look at the handshake meanwhile
    // and abort the call (closing its socket) for a client that left.
    let url = service.url.clone();
    let mut task = tokio::spawn(call(service.client.clone(), url, ask.token, deadline));
    let outcome = loop {
        match tokio::time::timeout(PENDING_CHECK, &mut task).await {
            Ok(joined) => break joined.unwrap_or(Outcome::Failed),
            Err(_) if server.is_pending(ask.id) => {}
            Err(_) => {
                task.abort();
                return;
            }
        }
    };
    let decision = match outcome {
        Outcome::Answer(StatusCode::OK, name) if !name.is_empty() => {
            Decision::accept_with(User(String::from_utf8_lossy(&name).into_owned()))
        }
        Outcome::Answer(StatusCode::UNAUTHORIZED, _) | Outcome::Unsendable => unauthorized(
            "invalid token\n",
            "Bearer realm=\"c10k\", error=\"invalid_token\"",
        ),
        Outcome::Answer(..) | Outcome::Failed => unavailable(),
    };
    // A decision that comes after the handshake timeout is a no-op (the client got 503).
    server.decide(ask.id, decision);
}

/// One call: the request, its answer and the body, all by `deadline`.
async fn call(client: HttpClient, url: Uri, token: Vec<u8>, deadline: Instant) -> Outcome {
    let Ok(bearer) = HeaderValue::from_bytes(&[b"Bearer ".as_slice(), &token].concat()) else {
        return Outcome::Unsendable;
    };
    let Ok(req) = Request::get(url)
        .header(AUTHORIZATION, bearer)
        .body(Empty::<Bytes>::new())
    else {
        return Outcome::Failed;
    };
    let answer = async {
        let res = client.request(req).await.ok()?;
        let status = res.status();
        let body = Limited::new(res.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .ok()?;
        Some(Outcome::Answer(status, body.to_bytes()))
    };
    tokio::time::timeout_at(deadline.into(), answer)
        .await
        .ok()
        .flatten()
        .unwrap_or(Outcome::Failed)
}
