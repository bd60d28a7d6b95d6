//! The application's side of the engine: the [`Handler`] trait and the [`Ctx`] given to its
//! callbacks.
//!
//! Every callback runs on the thread of the shard that owns the connection, so a handler needs no
//! locks: the server makes one handler per shard with a factory. From other threads, use a
//! [`ServerHandle`].

use std::time::Duration;

pub use super::decision::{Decision, HttpResponse};
use super::error::SendError;
use super::history::{Resume, Since};
use super::id::ConnId;
use super::node::ServerHandle;
use super::shard::Shard;
pub use super::shard::TimerId;
use super::stats::Stats;
use crate::proto::handshake::Request;
use crate::proto::{CloseCode, Message, MessageKind};

/// Callbacks for the events of one shard's connections. All have defaults but `on_message`.
///
/// A handler declares what it keeps for each connection, its [`State`](Handler::State): the
/// engine keeps it beside the connection's slab entry, hands it to every callback of that
/// connection, and gives it back to [`on_close`](Handler::on_close) when the connection is gone.
/// It comes from the handshake's [`Decision`] (or `Default`); a handler that keeps nothing
/// declares `type State = ();`, which costs nothing.
///
/// # Panics in callbacks
///
/// A panic in a callback is caught: it costs the connection it was about, never the shard or
/// its other connections. Each one is counted ([`Stats::handler_panics`], the metric
/// `c10k_handler_panics_total`) and logged once (`log::error!`, with the shard, the callback,
/// the connection and the panic's message). Then:
///
/// | callback | what the panic does |
/// |---|---|
/// | [`on_message`](Handler::on_message), [`on_ping`](Handler::on_ping), [`on_pong`](Handler::on_pong), [`on_drain`](Handler::on_drain), [`on_open`](Handler::on_open) | the connection is failed with 1011 Internal Error: what the callback sent before it panicked goes out, then the Close frame; nothing more of its input is read; [`on_close`](Handler::on_close) follows, with 1011 |
/// | [`on_handshake`](Handler::on_handshake), [`on_http`](Handler::on_http) | the client is answered 500 and the connection closed |
/// | [`on_close`](Handler::on_close) | nothing more: the connection is gone and its state was dropped |
/// | [`on_timer`](Handler::on_timer) | nothing more: the shard goes on |
///
/// The handler itself is kept: whatever the panic left half-done in it (or in the connection's
/// state) is its own business. With `panic = "abort"` in the build profile nothing can be
/// caught: the first panic ends the process.
///
/// ```
/// use c10k::proto::{CloseCode, Message, Request};
/// use c10k::{ConnId, Ctx, Decision, Handler};
///
/// /// A room: only pages from one origin may join; text is relayed to everyone in it, with the
/// /// name the page gave in its path (`/name`).
/// struct Room;
///
/// impl Handler for Room {
///     type State = String;
///
///     fn on_handshake(&mut self, _ctx: &mut Ctx<'_>, _id: ConnId, req: &Request<'_>) -> Decision<String> {
///         match req.origin() {
///             None | Some("https://example.org") => Decision::accept_with(req.path()[1..].to_owned()),
///             Some(_) => Decision::reject(403, "origin not allowed\n"),
///         }
///     }
///
///     fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _name: &mut String, _req: &Request<'_>) {
///         let _ = ctx.subscribe(id, "room");
///     }
///
///     fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, name: &mut String, msg: Message<'_>) {
///         match msg {
///             Message::Text(t) => {
///                 let line = format!("{name}: {t}");
///                 ctx.publish("room", c10k::proto::MessageKind::Text, line.as_bytes());
///             }
///             Message::Binary(_) => {
///                 let _ = ctx.close(id, CloseCode::Unsupported, "text only");
///             }
///         }
///     }
/// }
/// ```
pub trait Handler: 'static {
    /// What the handler keeps for each connection (`()` for nothing). Made by the handshake's
    /// [`Decision`] ([`Decision::accept_with`]), or `Default` ([`Decision::accept`]).
    type State: Default + 'static;

    /// Decides on a WebSocket upgrade request that passed the protocol checks: accept (optionally
    /// choosing a subprotocol among [`Request::protocols`], adding header fields and giving the
    /// connection its state), reject with any response (401 for a failed authentication, 403 for
    /// a disallowed [`Request::origin`], ...), or [`Decision::Pending`] to decide later from any
    /// thread with [`ServerHandle::decide`] (an authentication service that takes milliseconds):
    /// the connection then waits, reading nothing more, until the decision or the handshake
    /// timeout (503). `id` names the connection for that later decision. Accepts by default.
    fn on_handshake(&mut self, ctx: &mut Ctx<'_>, id: ConnId, req: &Request<'_>) -> Decision<Self::State> {
        let _ = (ctx, id, req);
        Decision::accept()
    }

    /// A connection is open: its 101 response was written.
    fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, state: &mut Self::State, req: &Request<'_>) {
        let _ = (ctx, id, state, req);
    }

    /// A complete message. Single-frame messages borrow the shard's read buffer: no copy was made.
    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, state: &mut Self::State, msg: Message<'_>);

    /// A ping arrived (it was answered already unless automatic pongs are off).
    fn on_ping(&mut self, ctx: &mut Ctx<'_>, id: ConnId, state: &mut Self::State, payload: &[u8]) {
        let _ = (ctx, id, state, payload);
    }

    /// A pong arrived.
    fn on_pong(&mut self, ctx: &mut Ctx<'_>, id: ConnId, state: &mut Self::State, payload: &[u8]) {
        let _ = (ctx, id, state, payload);
    }

    /// The connection is gone, exactly once per opened connection; its state is handed back.
    /// `code` is the code of the peer's Close frame if one arrived; otherwise the code this end
    /// failed the connection with (1002, 1007, 1008, 1009, ...); otherwise 1006 (the TCP
    /// connection ended without a Close frame from the peer, even if this end had sent one: an
    /// unanswered [`Ctx::close`] or shutdown reports 1006).
    fn on_close(&mut self, ctx: &mut Ctx<'_>, id: ConnId, state: Self::State, code: CloseCode, reason: &str) {
        let _ = (ctx, id, state, code, reason);
    }

    /// The connection's write queue, which had grown, is empty again.
    fn on_drain(&mut self, ctx: &mut Ctx<'_>, id: ConnId, state: &mut Self::State) {
        let _ = (ctx, id, state);
    }

    /// A subscription that follows offsets ([`Ctx::subscribe_from`]) was answered late (the
    /// topic's history had to be loaded from a bridge first: the recovered messages were
    /// queued just before), or lost part of its topic since ([`Resume::Lost`]: the topic's
    /// history was lost, e.g. its broker restarted without its data; live messages go on after
    /// the position given). Tell the client in the application's protocol.
    fn on_resume(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: ConnId,
        state: &mut Self::State,
        topic: &str,
        resume: Resume,
    ) {
        let _ = (ctx, id, state, topic, resume);
    }

    /// A timer set with [`Ctx::set_timer`] fired.
    fn on_timer(&mut self, ctx: &mut Ctx<'_>, token: u64) {
        let _ = (ctx, token);
    }

    /// A plain HTTP request (not a WebSocket upgrade). The connection is closed after the answer.
    /// By default: 426 Upgrade Required.
    fn on_http(&mut self, ctx: &mut Ctx<'_>, req: &Request<'_>) -> HttpResponse {
        let _ = (ctx, req);
        HttpResponse::upgrade_required()
    }
}

/// What a callback can do: act on any connection of its shard, set timers, read statistics.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub(super) shard: &'a mut Shard,
}

impl Ctx<'_> {
    /// The index of this shard.
    pub fn shard(&self) -> usize {
        self.shard.index()
    }

    /// Sends a whole message to a connection of this shard.
    ///
    /// Small messages to the connection whose input is being handled are gathered and written
    /// with one system call when the input is done; others are written at once. What the kernel
    /// does not take waits in the connection's queue, up to the configured cap, past which the
    /// back-pressure policy applies (close with 1008, or drop this message).
    pub fn send(&mut self, id: ConnId, kind: MessageKind, payload: &[u8]) -> Result<(), SendError> {
        self.shard.send(id, kind, payload)
    }

    /// Sends a text message.
    pub fn send_text(&mut self, id: ConnId, text: &str) -> Result<(), SendError> {
        self.shard.send(id, MessageKind::Text, text.as_bytes())
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, id: ConnId, data: &[u8]) -> Result<(), SendError> {
        self.shard.send(id, MessageKind::Binary, data)
    }

    /// Sends a ping.
    pub fn ping(&mut self, id: ConnId, payload: &[u8]) -> Result<(), SendError> {
        self.shard.ping(id, payload)
    }

    /// Starts the closing handshake with `code` and `reason` (at most 123 bytes).
    pub fn close(&mut self, id: ConnId, code: CloseCode, reason: &str) -> Result<(), SendError> {
        self.shard.close(id, code, reason)
    }

    /// Subscribes a connection of this shard to `topic`. Returns false if it already was. The
    /// subscription ends when the connection closes.
    pub fn subscribe(&mut self, id: ConnId, topic: &str) -> Result<bool, SendError> {
        self.shard.subscribe(id, topic)
    }

    /// Subscribes a connection of this shard to `topic`, following offsets from `since` (the
    /// server must keep history: [`ServerConfig::history`](crate::ServerConfig::history), else
    /// [`SendError::NoHistory`]). Every message of the topic then comes with its offset: its
    /// payload starts with the offset in decimal and one space (`"42 hello"`), same opcode.
    ///
    /// With [`Since::After`], every message after that position still kept is queued first,
    /// in order, then live messages, with no gap and no duplicate at the seam; or, if the
    /// position is of another epoch or older than what is kept, nothing is queued and the
    /// answer says so ([`Resume::Lost`]: never a silent gap).
    ///
    /// `Some` is the answer, given now. `None` when the node's history of the topic is still
    /// being loaded from a bridge ([`Bridge::keeps_history`](crate::Bridge::keeps_history)):
    /// the answer comes later through [`Handler::on_resume`], which also tells of a history
    /// lost later. Already subscribed: the subscription starts following from `since`.
    pub fn subscribe_from(
        &mut self,
        id: ConnId,
        topic: &str,
        since: Since,
    ) -> Result<Option<Resume>, SendError> {
        self.shard.subscribe_from(id, topic, since)
    }

    /// Unsubscribes a connection from `topic`. Returns false if it was not subscribed.
    pub fn unsubscribe(&mut self, id: ConnId, topic: &str) -> Result<bool, SendError> {
        self.shard.unsubscribe(id, topic)
    }

    /// Publishes a message to every subscriber of `topic`, on every shard (and other nodes when
    /// the server has a bridge). The frame is encoded once and its bytes are shared by all the
    /// subscribers' queues; subscribers over their queue cap fall under the back-pressure policy.
    /// Messages from one publisher arrive in the order they were published. Returns the number of
    /// subscribers reached on this shard now: with history on
    /// ([`ServerConfig::history`](crate::ServerConfig::history)), always 0, as the message gets
    /// its offset first and reaches this shard's subscribers through its inbox, in the topic's
    /// order, at the end of the loop's turn.
    pub fn publish(&mut self, topic: &str, kind: MessageKind, payload: &[u8]) -> usize {
        self.shard.publish(topic, kind, payload)
    }

    /// The topics a connection of this shard subscribes to.
    pub fn topics_of(&self, id: ConnId) -> impl Iterator<Item = std::sync::Arc<str>> + '_ {
        self.shard.topics_of(id)
    }

    /// Subscribers of `topic` on this shard.
    pub fn subscribers(&self, topic: &str) -> usize {
        self.shard.subscriber_count(topic)
    }

    /// Bytes queued for a connection that the kernel did not take yet; `None` if it is gone.
    pub fn buffered_amount(&self, id: ConnId) -> Option<usize> {
        self.shard.buffered_amount(id)
    }

    /// Whether `id` is an open connection of this shard.
    pub fn is_open(&self, id: ConnId) -> bool {
        self.shard.is_open(id)
    }

    /// Calls [`Handler::on_timer`] with `token` after `delay` (10 ms resolution).
    ///
    /// ```
    /// # use c10k::{ConnId, Ctx, Handler};
    /// # use c10k::proto::Message;
    /// /// Sends a tick to a connection every second, starting when it says "start".
    /// struct Ticker(Option<ConnId>);
    ///
    /// impl Handler for Ticker {
    ///     type State = ();
    ///
    ///     fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _: &mut (), msg: Message<'_>) {
    ///         if msg.as_bytes() == b"start" {
    ///             self.0 = Some(id);
    ///             ctx.set_timer(std::time::Duration::from_secs(1), 7);
    ///         }
    ///     }
    ///
    ///     fn on_timer(&mut self, ctx: &mut Ctx<'_>, token: u64) {
    ///         if let (7, Some(id)) = (token, self.0)
    ///             && ctx.send_text(id, "tick").is_ok()
    ///         {
    ///             ctx.set_timer(std::time::Duration::from_secs(1), 7);
    ///         }
    ///     }
    /// }
    /// ```
    pub fn set_timer(&mut self, delay: Duration, token: u64) -> TimerId {
        self.shard.set_timer(delay, token)
    }

    /// Cancels a timer; false if it already fired or was cancelled.
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.shard.cancel_timer(timer)
    }

    /// The address of connection `id`'s client: its socket's peer, or what a trusted load
    /// balancer's PROXY header said ([`ServerConfig::trusted_proxies`]). `None` if the
    /// connection is gone.
    ///
    /// [`ServerConfig::trusted_proxies`]: super::ServerConfig::trusted_proxies
    pub fn client_addr(&self, id: ConnId) -> Option<std::net::SocketAddr> {
        self.shard.entry(id)?;
        self.shard.client_addr_of(id.key as usize)
    }

    /// Whether the server is shutting down: in its lame-duck period (still accepting, upgrades
    /// refused with 503) or draining. A health check should answer 503 then.
    pub fn is_draining(&self) -> bool {
        self.shard.is_draining()
    }

    /// Every shard's statistics, indexed by shard: this shard's as of now, the others' as they
    /// last published them (at most about a second ago). For metrics endpoints.
    pub fn all_stats(&self) -> Vec<Stats> {
        self.shard.all_stats()
    }

    /// This shard's statistics so far.
    pub fn stats(&self) -> &Stats {
        self.shard.stats()
    }

    /// A handle on the whole server, to reach other shards or shut down.
    pub fn server(&self) -> ServerHandle {
        ServerHandle::new(std::sync::Arc::clone(self.shard.node()))
    }
}
