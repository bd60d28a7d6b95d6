//! The opening handshake (RFC 6455 section 4), both roles, as pure functions over byte buffers.
//!
//! Server side: [`parse_request`] reads a request head that may arrive in pieces (it answers
//! `Ok(None)` until the head is complete) and may be followed by frame bytes
//! ([`Request::head_len`] says where the head ends). A request that asks for `Upgrade: websocket`
//! is checked against every rule of section 4.2.1 and each failure has its status
//! ([`HandshakeError::status`]); any other request is plain HTTP ([`Request::is_websocket`] is
//! false) for the layer above to answer. The application then answers with [`write_accept`] (101,
//! optionally choosing a subprotocol and adding header fields) or [`write_response`] (any status,
//! header fields and body).
//!
//! Client side: [`write_request`] builds the request around a caller-supplied random key and
//! returns what the answer must contain; [`parse_response`] checks the server's 101 response.
//!
//! Neither side allocates for the head itself: parsed requests and responses borrow the input.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest, Sha1};

use super::deflate::{self, DeflateConfig, DeflateParams};
use super::error::HandshakeError;
use super::http_token::{self, is_token};

/// The GUID that RFC 6455 appends to the key before hashing.
pub const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Default limit on the size of a request or response head, in bytes.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 8 * 1024;

/// Default limit on the number of header fields in a head.
pub const DEFAULT_MAX_HEADERS: usize = 64;

/// The most header fields that can be parsed, whatever the configured limit.
pub const MAX_HEADERS_CAP: usize = 256;

/// Limits on a request or response head; both are checked before anything is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Maximum head size in bytes, request line and final blank line included.
    pub max_bytes: usize,
    /// Maximum number of header fields (at most [`MAX_HEADERS_CAP`]).
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
        }
    }
}

/// One header field as received. Names keep their case; compare them case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The field name.
    pub name: &'a str,
    /// The raw field value (not necessarily UTF-8).
    pub value: &'a [u8],
}

/// A parsed HTTP request head: a WebSocket upgrade or plain HTTP.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    method: &'a str,
    target: &'a str,
    headers: Vec<Header<'a>>,
    head_len: usize,
    accept: Option<[u8; 28]>,
    client: Option<core::net::SocketAddr>,
}

impl<'a> Request<'a> {
    /// Whether this request is a valid WebSocket upgrade; false for plain HTTP.
    pub fn is_websocket(&self) -> bool {
        self.accept.is_some()
    }

    /// The address of the client, as the server that read the request knows it: its socket's
    /// peer, or what a trusted load balancer's PROXY header said (see
    /// `ServerConfig::trusted_proxies`). `None` when the request was parsed without a
    /// connection.
    pub fn client_addr(&self) -> Option<core::net::SocketAddr> {
        self.client
    }

    /// Records the client's address (the server that read the request does, before its
    /// handler sees it).
    pub fn set_client_addr(&mut self, addr: Option<core::net::SocketAddr>) {
        self.client = addr;
    }

    /// The number of bytes of the head; frame bytes may follow in the same buffer.
    pub fn head_len(&self) -> usize {
        self.head_len
    }

    /// The method (`GET` for every WebSocket upgrade).
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The request target as sent: path and query.
    pub fn target(&self) -> &'a str {
        self.target
    }

    /// The path: the target up to `?`.
    pub fn path(&self) -> &'a str {
        self.target.split_once('?').map_or(self.target, |(p, _)| p)
    }

    /// The query string after `?`, if any.
    pub fn query(&self) -> Option<&'a str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// All header fields, in order.
    pub fn headers(&self) -> &[Header<'a>] {
        &self.headers
    }

    /// The value of the first header field named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        find(&self.headers, name)
    }

    /// The raw values of every header field named `name` (case-insensitive), in order; for
    /// example the `Sec-WebSocket-Extensions` values to give to
    /// [`deflate::negotiate`].
    pub fn header_values<'h>(&'h self, name: &'h str) -> impl Iterator<Item = &'a [u8]> + 'h {
        values(&self.headers, name)
    }

    /// The `Host` header field.
    pub fn host(&self) -> Option<&'a str> {
        self.header("host").and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The `Origin` header field, sent by browsers: check it against an allow-list to stop
    /// cross-site WebSocket hijacking (answer 403 otherwise).
    pub fn origin(&self) -> Option<&'a str> {
        self.header("origin").and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The subprotocols the client offers, in its order of preference, over every
    /// `Sec-WebSocket-Protocol` field.
    pub fn protocols(&self) -> impl Iterator<Item = &'a str> + '_ {
        list_values(&self.headers, "sec-websocket-protocol")
    }

    /// The extension offers, one string each (`name; param=value`), over every
    /// `Sec-WebSocket-Extensions` field.
    pub fn extensions(&self) -> impl Iterator<Item = &'a str> + '_ {
        list_values(&self.headers, "sec-websocket-extensions")
    }

    /// The `Sec-WebSocket-Accept` value this request calls for, if it is a WebSocket upgrade.
    pub fn accept_key(&self) -> Option<&str> {
        self.accept.as_ref().and_then(|a| std::str::from_utf8(a).ok())
    }
}

/// Parses a request head from the start of `buf`.
///
/// - `Ok(None)`: the head is not complete yet (and within the limits): call again with more bytes.
/// - `Ok(Some(request))`: a complete head; a plain HTTP request if it does not ask for
///   `Upgrade: websocket`, otherwise a WebSocket upgrade that passed every check.
/// - `Err(e)`: answer with `e.status()` and `e.response_headers()`, then close.
pub fn parse_request<'a>(buf: &'a [u8], limits: &HeadLimits) -> Result<Option<Request<'a>>, HandshakeError> {
    let max_headers = limits.max_headers.min(MAX_HEADERS_CAP);
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS_CAP];
    let mut req = httparse::Request::new(&mut storage[..max_headers]);
    // Only the first `max_bytes` are looked at: bytes past the limit must not change the answer,
    // or a head given whole would fail differently from the same head given in pieces.
    let head_len = match req.parse(&buf[..buf.len().min(limits.max_bytes)]) {
        Ok(httparse::Status::Complete(n)) if n <= limits.max_bytes => n,
        Ok(httparse::Status::Complete(_)) => {
            return Err(HandshakeError::HeadersTooLarge {
                max: limits.max_bytes,
            });
        }
        Ok(httparse::Status::Partial) if buf.len() >= limits.max_bytes => {
            return Err(HandshakeError::HeadersTooLarge {
                max: limits.max_bytes,
            });
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HandshakeError::TooManyHeaders { max: max_headers });
        }
        Err(e) => return Err(HandshakeError::MalformedRequest(httparse_reason(e))),
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HandshakeError::MalformedRequest("incomplete request line"));
    };
    let headers: Vec<Header<'a>> = req
        .headers
        .iter()
        .map(|h| Header {
            name: h.name,
            value: h.value,
        })
        .collect();
    let mut request = Request {
        method,
        target,
        headers,
        head_len,
        accept: None,
        client: None,
    };
    if !has_token(&request.headers, "upgrade", "websocket") {
        return Ok(Some(request));
    }
    request.accept = Some(check_upgrade(&request, minor)?);
    Ok(Some(request))
}

/// Checks a request that asked for `Upgrade: websocket` (RFC 6455 section 4.2.1) and computes
/// its accept key.
fn check_upgrade(req: &Request<'_>, minor: u8) -> Result<[u8; 28], HandshakeError> {
    if req.method != "GET" {
        return Err(HandshakeError::MethodNotGet);
    }
    if minor < 1 {
        return Err(HandshakeError::HttpVersion);
    }
    if count(&req.headers, "host") != 1 {
        return Err(HandshakeError::MissingHost);
    }
    if !has_token(&req.headers, "connection", "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    let version = find(&req.headers, "sec-websocket-version").map(trim);
    if count(&req.headers, "sec-websocket-version") != 1 || version != Some(b"13".as_slice()) {
        return Err(HandshakeError::UnsupportedVersion);
    }
    if count(&req.headers, "sec-websocket-key") != 1 {
        return Err(HandshakeError::InvalidKey);
    }
    let key = find(&req.headers, "sec-websocket-key")
        .map(trim)
        .unwrap_or_default();
    let mut raw = [0u8; 18];
    match BASE64.decode_slice(key, &mut raw) {
        Ok(16) => Ok(accept_key(key)),
        _ => Err(HandshakeError::InvalidKey),
    }
}

/// Computes `Sec-WebSocket-Accept` for a key: base64(SHA-1(key ++ GUID)) (RFC 6455 section 4.2.2).
pub fn accept_key(key: &[u8]) -> [u8; 28] {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    let digest = sha.finalize();
    let mut out = [0u8; 28];
    // 20 bytes always encode to exactly 28 base64 characters.
    let _ = BASE64.encode_slice(digest, &mut out);
    out
}

/// The answer to a WebSocket upgrade that the application accepts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Accept<'a> {
    /// The subprotocol chosen among those the client offered ([`Request::protocols`]).
    pub protocol: Option<&'a str>,
    /// Extra header fields for the 101 response.
    pub headers: &'a [(&'a str, &'a str)],
}

/// A header field or subprotocol the application supplied that cannot go into a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// A header name that is not an HTTP token, or a value with CR, LF or NUL in it.
    InvalidHeader(String),
    /// A subprotocol the client did not offer.
    UnofferedProtocol(String),
    /// A status outside 100-999, or 101 outside [`write_accept`].
    InvalidStatus(u16),
}

impl std::fmt::Display for ResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidHeader(name) => write!(f, "header field {name:?} cannot be sent"),
            Self::UnofferedProtocol(p) => write!(f, "subprotocol {p:?} was not offered by the client"),
            Self::InvalidStatus(s) => write!(f, "status {s} cannot be sent here"),
        }
    }
}

impl std::error::Error for ResponseError {}

/// Writes the `101 Switching Protocols` response to a WebSocket upgrade into `out`.
///
/// Fails, writing nothing, if `req` is not a WebSocket upgrade, the chosen subprotocol was not
/// offered, or an extra header field is not valid HTTP.
pub fn write_accept(req: &Request<'_>, accept: &Accept<'_>, out: &mut Vec<u8>) -> Result<(), ResponseError> {
    let key = req.accept.ok_or(ResponseError::InvalidStatus(101))?;
    if let Some(p) = accept.protocol
        && !req.protocols().any(|o| o == p)
    {
        return Err(ResponseError::UnofferedProtocol(p.to_owned()));
    }
    check_headers(accept.headers)?;
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
    out.extend_from_slice(&key);
    out.extend_from_slice(b"\r\n");
    if let Some(p) = accept.protocol {
        push_header(out, "Sec-WebSocket-Protocol", p);
    }
    for (name, value) in accept.headers {
        push_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Writes a complete HTTP/1.1 response (a rejection, an error, a plain page) into `out`, with
/// `Content-Length` and `Connection: close` added: the connection is to be closed after it.
/// Header fields that would frame the response differently (`Content-Length`, `Connection`,
/// `Transfer-Encoding`) are refused.
pub fn write_response(
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ResponseError> {
    if !(100..=999).contains(&status) || status == 101 {
        return Err(ResponseError::InvalidStatus(status));
    }
    check_headers(headers)?;
    // The framing of the response is this function's: two of these would contradict each other.
    if let Some((name, _)) = headers.iter().find(|(n, _)| {
        ["content-length", "connection", "transfer-encoding"]
            .iter()
            .any(|f| n.eq_ignore_ascii_case(f))
    }) {
        return Err(ResponseError::InvalidHeader((*name).to_owned()));
    }
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        push_header(out, name, value);
    }
    push_header(out, "Content-Length", &body.len().to_string());
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(body);
    Ok(())
}

/// Writes the response a server owes for a failed handshake: the error's status and header
/// fields, and its message as a plain-text body.
pub fn write_error_response(err: &HandshakeError, out: &mut Vec<u8>) {
    let status = err.status().unwrap_or(400);
    let mut headers: Vec<(&str, &str)> = err.response_headers().to_vec();
    headers.push(("Content-Type", "text/plain; charset=utf-8"));
    let body = format!("{err}\n");
    // The status and the header fields are constants known to be valid.
    let _ = write_response(status, &headers, body.as_bytes(), out);
}

/// The standard reason phrase of a status, or an empty one.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// What a client sends: everything but the key, which the caller draws from a CSPRNG.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientRequest<'a> {
    /// The `Host` header field value (`host` or `host:port`).
    pub host: &'a str,
    /// The request target: path and query, starting with `/`.
    pub target: &'a str,
    /// The `Origin` header field, if any.
    pub origin: Option<&'a str>,
    /// Subprotocols to offer, in order of preference.
    pub protocols: &'a [&'a str],
    /// Extra header fields.
    pub headers: &'a [(&'a str, &'a str)],
    /// Offer permessage-deflate with this policy ([`DeflateConfig::offer`]); ignored when the
    /// build has no `deflate` feature ([`deflate::AVAILABLE`]).
    pub deflate: Option<DeflateConfig>,
}

/// What a client remembers between its request and the server's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    accept: [u8; 28],
    deflate: Option<DeflateConfig>,
}

impl Expected {
    /// The permessage-deflate policy that was offered, if any.
    pub fn deflate(&self) -> Option<&DeflateConfig> {
        self.deflate.as_ref()
    }
}

/// Writes a client's upgrade request with the 16-byte `key` (RFC 6455 section 4.1) into `out`.
///
/// Fails, writing nothing, if a part of `req` cannot go into a request head.
pub fn write_request(
    req: &ClientRequest<'_>,
    key: [u8; 16],
    out: &mut Vec<u8>,
) -> Result<Expected, ResponseError> {
    check_headers(req.headers)?;
    if !is_field_value(req.host.as_bytes()) {
        return Err(ResponseError::InvalidHeader("Host".to_owned()));
    }
    if !req.target.starts_with('/') || req.target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(ResponseError::InvalidHeader("request target".to_owned()));
    }
    if req.origin.is_some_and(|o| !is_field_value(o.as_bytes())) {
        return Err(ResponseError::InvalidHeader("Origin".to_owned()));
    }
    if !req.protocols.iter().all(|p| is_token(p.as_bytes())) {
        return Err(ResponseError::InvalidHeader("Sec-WebSocket-Protocol".to_owned()));
    }
    let mut encoded = [0u8; 24];
    let _ = BASE64.encode_slice(key, &mut encoded);
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(req.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    push_header(out, "Host", req.host);
    out.extend_from_slice(
        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ",
    );
    out.extend_from_slice(&encoded);
    out.extend_from_slice(b"\r\n");
    if let Some(origin) = req.origin {
        push_header(out, "Origin", origin);
    }
    if !req.protocols.is_empty() {
        push_header(out, "Sec-WebSocket-Protocol", &req.protocols.join(", "));
    }
    let deflate = req.deflate.filter(|_| deflate::AVAILABLE);
    if let Some(d) = deflate {
        push_header(out, "Sec-WebSocket-Extensions", &d.offer());
    }
    for (name, value) in req.headers {
        push_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
    Ok(Expected {
        accept: accept_key(&encoded),
        deflate,
    })
}

/// A server's accepted `101` response, as parsed by [`parse_response`].
#[derive(Debug, Clone)]
pub struct Response<'a> {
    headers: Vec<Header<'a>>,
    head_len: usize,
    protocol: Option<&'a str>,
    deflate: Option<DeflateParams>,
}

impl<'a> Response<'a> {
    /// The number of bytes of the head; frames may follow in the same buffer.
    pub fn head_len(&self) -> usize {
        self.head_len
    }

    /// The subprotocol the server selected, one of those offered.
    pub fn protocol(&self) -> Option<&'a str> {
        self.protocol
    }

    /// The permessage-deflate parameters the server agreed to (checked against the offer).
    pub fn deflate(&self) -> Option<DeflateParams> {
        self.deflate
    }

    /// All header fields, in order.
    pub fn headers(&self) -> &[Header<'a>] {
        &self.headers
    }

    /// The value of the first header field named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        find(&self.headers, name)
    }
}

/// Parses and checks a server's response to [`write_request`] (RFC 6455 section 4.1, "the client
/// MUST validate the server's response").
///
/// `Ok(None)` while the head is incomplete. `offered` is the list of subprotocols that was sent.
/// An extension is accepted only if it is the permessage-deflate that was offered, with
/// parameters the offer allows ([`deflate::check_response`]; [`Response::deflate`]).
pub fn parse_response<'a>(
    buf: &'a [u8],
    expected: &Expected,
    offered: &[&str],
    limits: &HeadLimits,
) -> Result<Option<Response<'a>>, HandshakeError> {
    let max_headers = limits.max_headers.min(MAX_HEADERS_CAP);
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS_CAP];
    let mut resp = httparse::Response::new(&mut storage[..max_headers]);
    let too_large = HandshakeError::ResponseTooLarge {
        max: limits.max_bytes,
    };
    // Only the first `max_bytes` are looked at, as in `parse_request`.
    let head_len = match resp.parse(&buf[..buf.len().min(limits.max_bytes)]) {
        Ok(httparse::Status::Complete(n)) if n <= limits.max_bytes => n,
        Ok(httparse::Status::Complete(_)) => return Err(too_large),
        Ok(httparse::Status::Partial) if buf.len() >= limits.max_bytes => return Err(too_large),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HandshakeError::MalformedResponse(httparse_reason(e))),
    };
    let code = resp.code.unwrap_or(0);
    if code != 101 {
        return Err(HandshakeError::UnexpectedStatus(code));
    }
    if resp.version != Some(1) {
        return Err(HandshakeError::MalformedResponse("101 response must be HTTP/1.1"));
    }
    let headers: Vec<Header<'a>> = resp
        .headers
        .iter()
        .map(|h| Header {
            name: h.name,
            value: h.value,
        })
        .collect();
    if !has_token(&headers, "upgrade", "websocket") {
        return Err(HandshakeError::MissingUpgrade);
    }
    if !has_token(&headers, "connection", "upgrade") {
        return Err(HandshakeError::ResponseMissingConnectionUpgrade);
    }
    if count(&headers, "sec-websocket-accept") != 1
        || find(&headers, "sec-websocket-accept").map(trim) != Some(expected.accept.as_slice())
    {
        return Err(HandshakeError::BadAccept);
    }
    let protocol = {
        let mut protocols = list_values(&headers, "sec-websocket-protocol");
        let protocol = protocols.next();
        if protocols.next().is_some() || protocol.is_some_and(|p| !offered.contains(&p)) {
            return Err(HandshakeError::UnofferedSubprotocol);
        }
        protocol
    };
    let deflate = match expected.deflate.as_ref() {
        Some(offered) => deflate::check_response(values(&headers, "sec-websocket-extensions"), offered)?,
        None if list_values(&headers, "sec-websocket-extensions").next().is_some() => {
            return Err(HandshakeError::UnofferedExtension);
        }
        None => None,
    };
    Ok(Some(Response {
        headers,
        head_len,
        protocol,
        deflate,
    }))
}

/// A short description of an httparse error.
fn httparse_reason(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "invalid HTTP version",
    }
}

fn find<'a>(headers: &[Header<'a>], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// The raw values of every field named `name`, in order.
fn values<'a, 'h>(headers: &'h [Header<'a>], name: &'h str) -> impl Iterator<Item = &'a [u8]> + 'h {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

fn count(headers: &[Header<'_>], name: &str) -> usize {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .count()
}

/// The non-empty elements of the comma-separated lists in every field named `name`.
fn list_values<'a, 'h>(headers: &'h [Header<'a>], name: &'h str) -> impl Iterator<Item = &'a str> + 'h {
    values(headers, name)
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(http_token::list_elements)
}

/// Whether some field `name` lists `token` (ASCII case-insensitive).
fn has_token(headers: &[Header<'_>], name: &str, token: &str) -> bool {
    list_values(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

fn trim(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn is_field_value(v: &[u8]) -> bool {
    !v.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0)
}

fn check_headers(headers: &[(&str, &str)]) -> Result<(), ResponseError> {
    for (name, value) in headers {
        if !is_token(name.as_bytes()) || !is_field_value(value.as_bytes()) {
            return Err(ResponseError::InvalidHeader((*name).to_owned()));
        }
    }
    Ok(())
}
