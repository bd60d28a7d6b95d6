//! One TCP connection to Redis, with its timeouts for its whole life.
//!
//! Connecting is bounded by the connect timeout (per address); every write by a deadline (a write
//! that cannot finish by then fails with `TimedOut`: Redis stopped reading); every read is a wait
//! of a given length, after which the caller decides whether the silence is normal (no message
//! yet) or fatal (a reply overdue). Bytes read are kept by the RESP parser between waits, so a
//! wait that ends in the middle of a reply loses nothing.

use std::io::{self, IoSlice, Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::time::{Duration, Instant};

use super::resp::{self, Parser, Value};

/// Bytes read from the socket at once.
const READ_CHUNK: usize = 16 << 10;

/// Where a Redis server is, from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<String>,
}

impl Target {
    /// Parses `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]` (port 6379 by default). The database
    /// number is accepted and ignored: pub/sub channels are the same in every database.
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("bad Redis URL {url:?}: {why}");
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| bad("only redis://HOST[:PORT] is supported (no TLS, no Unix socket)"))?;
        let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
        if !db.is_empty() && db.parse::<u32>().is_err() {
            return Err(bad("the path is a database number"));
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or(("", u));
                let user = (!user.is_empty()).then(|| percent_decode(user)).transpose();
                let pass = (!pass.is_empty()).then(|| percent_decode(pass)).transpose();
                (user.map_err(&bad)?, pass.map_err(&bad)?)
            }
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, p) = v6.split_once(']').ok_or_else(|| bad("an unclosed '['"))?;
            (h, p.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None => 6379,
            Some(p) => p.parse().map_err(|_| bad("the port is a number up to 65535"))?,
        };
        Ok(Self {
            host: host.to_owned(),
            port,
            user,
            password,
        })
    }
}

impl Target {
    /// The same credentials at another address (a node of a cluster).
    pub(crate) fn at(&self, host: &str, port: u16) -> Self {
        Self {
            host: host.to_owned(),
            port,
            ..self.clone()
        }
    }

    /// `host:port`, the name of a node in a cluster's replies.
    pub(crate) fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Parses `redis-cluster://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]`: the nodes to ask
    /// for the cluster's map first (any one that answers is enough).
    pub(crate) fn parse_cluster(url: &str) -> Result<Vec<Self>, String> {
        let rest = url
            .strip_prefix("redis-cluster://")
            .ok_or_else(|| format!("bad Redis Cluster URL {url:?}: it starts with redis-cluster://"))?;
        let (userinfo, hosts) = match rest.rsplit_once('@') {
            Some((u, h)) => (format!("{u}@"), h),
            None => (String::new(), rest),
        };
        let hosts = hosts.strip_suffix('/').unwrap_or(hosts);
        hosts
            .split(',')
            .map(|h| Self::parse(&format!("redis://{userinfo}{h}")))
            .collect()
    }
}

/// `%XX` escapes of a URL's user or password.
fn percent_decode(s: &str) -> Result<String, &'static str> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let hex = [bytes.next(), bytes.next()];
        let digit = |d: Option<u8>| (d? as char).to_digit(16);
        match (digit(hex[0]), digit(hex[1])) {
            (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
            _ => return Err("a '%' not followed by two hex digits"),
        }
    }
    String::from_utf8(out).map_err(|_| "the user or password is not UTF-8")
}

/// A connection to Redis.
#[derive(Debug)]
pub(crate) struct Link {
    stream: TcpStream,
    parser: Parser,
    scratch: Vec<u8>,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl Link {
    /// Connects (each address within `connect`), then authenticates if the URL has a password
    /// (answered within `io`). Bulk strings past `max_bulk` bytes are skipped when read.
    pub(crate) fn open(
        target: &Target,
        connect: Duration,
        io: Duration,
        max_bulk: usize,
    ) -> io::Result<Self> {
        Self::open_with(target, connect, io, Parser::new(max_bulk))
    }

    /// Connects as [`open`](Self::open) does, reading replies with `parser` (and its bounds).
    pub(crate) fn open_with(
        target: &Target,
        connect: Duration,
        io: Duration,
        parser: Parser,
    ) -> io::Result<Self> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
        let mut stream = None;
        for addr in (target.host.as_str(), target.port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, connect) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let stream = stream.ok_or(last)?;
        stream.set_nodelay(true)?;
        let mut link = Self {
            stream,
            parser,
            scratch: vec![0; READ_CHUNK],
            read_timeout: None,
            write_timeout: None,
        };
        if let Some(password) = &target.password {
            let mut cmd = Vec::new();
            match &target.user {
                Some(user) => resp::command(&mut cmd, &[b"AUTH", user.as_bytes(), password.as_bytes()]),
                None => resp::command(&mut cmd, &[b"AUTH", password.as_bytes()]),
            }
            let deadline = Instant::now() + io;
            link.send(&[&cmd], deadline)?;
            match link.reply(deadline)? {
                Value::Simple(_) => {}
                Value::Error(e) => {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!("Redis refused AUTH: {}", String::from_utf8_lossy(&e)),
                    ));
                }
                other => return Err(unexpected(&other)),
            }
        }
        Ok(link)
    }

    /// Writes every part, all by `deadline` (`TimedOut` otherwise: the connection is then
    /// useless, part of a command may have gone).
    pub(crate) fn send(&mut self, parts: &[&[u8]], deadline: Instant) -> io::Result<()> {
        let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        let mut left = &mut slices[..];
        while !left.is_empty() {
            let wait = deadline.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                return Err(timed_out("a write to Redis"));
            }
            if self.write_timeout != Some(wait) {
                self.stream.set_write_timeout(Some(wait))?;
                self.write_timeout = Some(wait);
            }
            match self.stream.write_vectored(left) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "Redis closed the connection",
                    ));
                }
                Ok(n) => IoSlice::advance_slices(&mut left, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Err(timed_out("a write to Redis")),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The next value among the bytes already read, without reading more; `None` if they hold
    /// no whole one.
    pub(crate) fn buffered(&mut self) -> io::Result<Option<Value>> {
        self.parser.next().map_err(invalid)
    }

    /// The next value from Redis, waiting at most `wait` for bytes; `None` if none came.
    pub(crate) fn poll(&mut self, wait: Duration) -> io::Result<Option<Value>> {
        if let Some(v) = self.parser.next().map_err(invalid)? {
            return Ok(Some(v));
        }
        let wait = wait.max(Duration::from_millis(1));
        if self.read_timeout != Some(wait) {
            self.stream.set_read_timeout(Some(wait))?;
            self.read_timeout = Some(wait);
        }
        match self.stream.read(&mut self.scratch) {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "Redis closed the connection",
            )),
            Ok(n) => {
                self.parser.feed(&self.scratch[..n]);
                self.parser.next().map_err(invalid)
            }
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The next value from Redis, by `deadline` (`TimedOut` otherwise).
    pub(crate) fn reply(&mut self, deadline: Instant) -> io::Result<Value> {
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                return Err(timed_out("a reply from Redis"));
            }
            if let Some(v) = self.poll(wait)? {
                return Ok(v);
            }
        }
    }
}

/// Whether an error is a timeout (a socket timeout reads as `WouldBlock` on Unix).
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock)
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"))
}

fn invalid(e: resp::RespError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// A reply of a kind the bridge did not ask for.
pub(crate) fn unexpected(v: &Value) -> io::Error {
    let what = match v {
        Value::Error(e) => format!("Redis answered an error: {}", String::from_utf8_lossy(e)),
        other => format!("unexpected reply from Redis: {other:?}"),
    };
    io::Error::new(io::ErrorKind::InvalidData, what)
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, BufReader};
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn urls_give_host_port_and_credentials() {
        let t = Target::parse("redis://127.0.0.1:6380").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, &t.user, &t.password),
            ("127.0.0.1", 6380, &None, &None)
        );
        let t = Target::parse("redis://localhost").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("localhost", 6379));
        let t = Target::parse("redis://:s%40cret@[::1]:7000/3").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 7000));
        assert_eq!(t.password.as_deref(), Some("s@cret"));
        assert_eq!(t.user, None);
        let t = Target::parse("redis://me:pw@h/").unwrap();
        assert_eq!(
            (t.user.as_deref(), t.password.as_deref()),
            (Some("me"), Some("pw"))
        );
        for bad in [
            "rediss://h",
            "unix:///tmp/redis.sock",
            "redis://",
            "redis://h:99999",
            "redis://h:port",
            "redis://h/db",
            "redis://:%zz@h",
            "http://h",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    /// A server on loopback that runs `serve` on its first connection.
    fn server(serve: impl FnOnce(TcpStream) + Send + 'static) -> Target {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((s, _)) = l.accept() {
                serve(s);
            }
        });
        Target::parse(&format!("redis://:pw@127.0.0.1:{port}")).unwrap()
    }

    #[test]
    fn link_authenticates_and_keeps_a_reply_split_across_waits() {
        let target = server(|mut s| {
            let mut line = String::new();
            let mut r = BufReader::new(s.try_clone().unwrap());
            // *2 $4 AUTH $2 pw: five lines.
            for _ in 0..5 {
                r.read_line(&mut line).unwrap();
            }
            assert!(line.contains("AUTH") && line.ends_with("pw\r\n"), "{line:?}");
            s.write_all(b"+OK\r\n*3\r\n$7\r\nmess").unwrap();
            std::thread::sleep(Duration::from_millis(60));
            s.write_all(b"age\r\n$1\r\nc\r\n$2\r\nhi\r\n").unwrap();
            std::thread::sleep(Duration::from_millis(500));
        });
        let mut link = Link::open(&target, Duration::from_secs(2), Duration::from_secs(2), 100).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut empty_waits = 0;
        let v = loop {
            if let Some(v) = link.poll(Duration::from_millis(5)).unwrap() {
                break v;
            }
            empty_waits += 1;
            assert!(Instant::now() < deadline);
        };
        assert!(empty_waits > 0, "the second half came later");
        assert_eq!(v.bytes(), None);
        let Value::Array(items) = v else { panic!("{v:?}") };
        assert_eq!(items[2], Value::Bulk(b"hi".to_vec()));
    }

    #[test]
    fn link_times_out_when_redis_never_answers() {
        let target = server(|s| {
            std::thread::sleep(Duration::from_secs(2));
            drop(s);
        });
        let e = Link::open(&target, Duration::from_secs(1), Duration::from_millis(100), 100).unwrap_err();
        assert!(is_timeout(&e), "{e}");
    }

    #[test]
    fn link_reports_an_auth_refusal() {
        let target = server(|mut s| {
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"-WRONGPASS invalid username-password pair\r\n");
            std::thread::sleep(Duration::from_millis(200));
        });
        let e = Link::open(&target, Duration::from_secs(1), Duration::from_secs(2), 100).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
    }
}
