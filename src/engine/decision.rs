//! The answers a handler gives: to a WebSocket upgrade request ([`Decision`]), and to a plain
//! HTTP request ([`HttpResponse`]).

/// The answer to a WebSocket upgrade request, with the connection's state if it is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision<S = ()> {
    /// Switch protocols.
    Accept {
        /// The subprotocol chosen among those offered.
        protocol: Option<String>,
        /// Extra header fields for the 101 response.
        headers: Vec<(String, String)>,
        /// The connection's state, handed to its callbacks.
        state: S,
    },
    /// Answer with this response and close.
    Reject(HttpResponse),
    /// Decide later, from any thread, with [`ServerHandle::decide`](crate::ServerHandle::decide). The connection reads
    /// nothing more meanwhile; it counts as a handshake (`Stats::handshaking`), and the
    /// handshake timeout still bounds the wait: past it, the client is answered 503.
    Pending,
}

impl<S: Default> Decision<S> {
    /// Accept with no subprotocol, no extra header field and the default state.
    pub fn accept() -> Self {
        Self::accept_with(S::default())
    }

    /// Accept, choosing `protocol`.
    pub fn accept_protocol(protocol: &str) -> Self {
        Self::accept().with_protocol(protocol)
    }
}

impl<S> Decision<S> {
    /// Accept, with `state` as the connection's state.
    pub fn accept_with(state: S) -> Self {
        Self::Accept {
            protocol: None,
            headers: Vec::new(),
            state,
        }
    }

    /// The same acceptance, choosing `protocol` among those offered (no effect on a rejection).
    pub fn with_protocol(mut self, protocol: &str) -> Self {
        if let Self::Accept { protocol: p, .. } = &mut self {
            *p = Some(protocol.to_owned());
        }
        self
    }

    /// The same answer with one more header field (on the 101, or on the rejection).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        let field = (name.to_owned(), value.to_owned());
        match &mut self {
            Self::Accept { headers, .. } => headers.push(field),
            Self::Reject(resp) => resp.headers.push(field),
            Self::Pending => {}
        }
        self
    }

    /// Reject with `status` and a plain-text body.
    pub fn reject(status: u16, body: &str) -> Self {
        Self::Reject(HttpResponse::text(status, body))
    }
}

/// A plain HTTP response, written with `Content-Length` and `Connection: close`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header fields (`Content-Length` and `Connection` are added).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The value of header field `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A response with a `text/plain` body.
    pub fn text(status: u16, body: &str) -> Self {
        Self::with_type(status, "text/plain; charset=utf-8", body.as_bytes().to_vec())
    }

    /// A response with a `text/html` body.
    pub fn html(status: u16, body: &str) -> Self {
        Self::with_type(status, "text/html; charset=utf-8", body.as_bytes().to_vec())
    }

    /// A response with a body of the given content type.
    pub fn with_type(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".to_owned(), content_type.to_owned())],
            body,
        }
    }

    /// 426 Upgrade Required, naming the protocol to upgrade to.
    pub fn upgrade_required() -> Self {
        let mut r = Self::text(426, "this is a WebSocket endpoint\n");
        r.headers.push(("Upgrade".to_owned(), "websocket".to_owned()));
        r.headers
            .push(("Sec-WebSocket-Version".to_owned(), "13".to_owned()));
        r
    }

    /// 404 Not Found.
    pub fn not_found() -> Self {
        Self::text(404, "not found\n")
    }
}
