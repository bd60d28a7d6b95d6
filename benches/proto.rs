//! Benchmarks of the sans-I/O protocol core, each beside a peer measured in the same run.
//!
//! Run with `cargo bench --bench proto` (the bench profile is LTO, one codegen unit). Groups:
//!
//! - `frame_header`: [`proto::frame::decode_header`] beside tungstenite's `FrameHeader::parse`,
//!   on the same 2-, 4-, 10- and 14-byte headers (headers/s).
//! - `unmask`: [`proto::mask::apply_mask`] beside `fastwebsockets::unmask` and the byte-at-a-time
//!   reference [`proto::mask::apply_mask_scalar`], at 16 B, 1 KiB and 64 KiB, from a 64-byte
//!   aligned start and from one byte past it (bytes/s).
//! - `utf8`: [`proto::utf8::validate`] and [`proto::utf8::Utf8Validator::feed`] (4 KiB pieces)
//!   beside `std::str::from_utf8`, on ASCII and on text where a third of the characters are
//!   multi-byte, at 64 B, 4 KiB and 1 MiB (bytes/s).
//! - `handshake`: [`proto::handshake::parse_request`] on a browser's upgrade request, and parse +
//!   [`proto::handshake::write_accept`], beside tungstenite's request parse + `create_response`
//!   (+ `write_response`), and the two parts that bound it: httparse alone on the same bytes, and
//!   [`proto::handshake::accept_key`] (SHA-1 and base64) alone (requests/s).
//! - `conn_read`: one server [`proto::Connection::read`] of a masked 20-byte text frame and of a
//!   masked 16 KiB binary frame, beside tungstenite's `WebSocketContext::read` on the same bytes
//!   (messages/s).
//! - `deflate` (feature `deflate`): one permessage-deflate message of 1 KiB of JSON-like text,
//!   compressed (sync flush, tail removed, context reset as without context takeover) and
//!   inflated again, with c10k's [`proto::deflate::Compressor`] / [`proto::deflate::Decompressor`]
//!   (flate2 over zlib-rs) beside the same with miniz_oxide's streaming API; level 6, 32 KiB
//!   window (bytes/s of the uncompressed message).
//!
//! Every input is built and checked once before its timed loop. Inputs that a routine changes in a
//! way that changes the work (a frame unmasked in place by `Connection::read`) are fresh copies
//! made by `iter_batched_ref` outside the timing.

use std::hint::black_box;
use std::io::{self, Cursor};
use std::time::Duration;

use c10k::proto::handshake::{Accept, HeadLimits, accept_key, parse_request, write_accept};
use c10k::proto::mask::{apply_mask, apply_mask_scalar};
use c10k::proto::utf8::{Utf8Validator, validate};
use c10k::proto::{self, Config, Connection, Event, Message};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = frame_header, unmask, utf8, handshake, conn_read, deflate
}
criterion_main!(benches);

// ---- frame header ----

/// Headers of each length: unmasked 7-bit, 16-bit and 64-bit lengths, and a masked 64-bit one.
fn headers() -> [(&'static str, Vec<u8>); 4] {
    [
        // FIN text, 5 bytes.
        ("2B", vec![0x81, 0x05]),
        // FIN binary, 16-bit length 0x0100.
        ("4B", vec![0x82, 0x7e, 0x01, 0x00]),
        // FIN binary, 64-bit length 0x10000.
        (
            "10B",
            vec![0x82, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00],
        ),
        // FIN binary, masked, 64-bit length 0x10000.
        (
            "14B",
            vec![
                0x82, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x37, 0xfa, 0x21, 0x3d,
            ],
        ),
    ]
}

fn frame_header(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_header");
    g.throughput(Throughput::Elements(1));
    for (name, bytes) in headers() {
        let (_, len) = proto::frame::decode_header(&bytes).unwrap().unwrap();
        assert_eq!(len, bytes.len());
        let mut cursor = Cursor::new(bytes.as_slice());
        assert!(
            tungstenite::protocol::frame::FrameHeader::parse(&mut cursor)
                .unwrap()
                .is_some()
        );
        assert_eq!(cursor.position() as usize, bytes.len());

        g.bench_with_input(BenchmarkId::new("c10k", name), &bytes, |b, bytes| {
            b.iter(|| proto::frame::decode_header(black_box(bytes)))
        });
        g.bench_with_input(BenchmarkId::new("tungstenite", name), &bytes, |b, bytes| {
            b.iter(|| {
                let mut cursor = Cursor::new(black_box(bytes.as_slice()));
                tungstenite::protocol::frame::FrameHeader::parse(&mut cursor).map(|h| h.map(|(h, _)| h))
            })
        });
    }
    g.finish();
}

// ---- unmask ----

fn unmask(c: &mut Criterion) {
    let mut g = c.benchmark_group("unmask");
    for (size_name, len) in [("16B", 16), ("1KiB", 1 << 10), ("64KiB", 64 << 10)] {
        // One buffer, with room to start the payload on a 64-byte boundary or one byte past it.
        let mut backing: Vec<u8> = (0..len + 128).map(|i| (i * 31 + 7) as u8).collect();
        let aligned = backing.as_ptr().align_offset(64);
        g.throughput(Throughput::Bytes(len as u64));
        for (align_name, start) in [("aligned", aligned), ("misaligned", aligned + 1)] {
            let param = format!("{size_name}-{align_name}");
            let buf = &mut backing[start..start + len];
            check_unmask(buf);
            // Masking is its own inverse and costs the same whatever the bytes, so the routine
            // works on the same buffer every iteration: fresh copies would add a memcpy and
            // cache misses to a loop that takes nanoseconds. The buffer stays in cache, as a
            // payload that was just read from a socket does.
            g.bench_function(BenchmarkId::new("c10k", &param), |b| {
                b.iter(|| apply_mask(black_box(&mut *buf), black_box(KEY), 0))
            });
            g.bench_function(BenchmarkId::new("fastwebsockets", &param), |b| {
                b.iter(|| fastwebsockets::unmask(black_box(&mut *buf), black_box(KEY)))
            });
            g.bench_function(BenchmarkId::new("scalar", &param), |b| {
                b.iter(|| apply_mask_scalar(black_box(&mut *buf), black_box(KEY), 0))
            });
        }
    }
    g.finish();
}

/// All three implementations compute the same bytes on this buffer.
fn check_unmask(buf: &[u8]) {
    let mut want = buf.to_vec();
    apply_mask_scalar(&mut want, KEY, 0);
    let mut ours = buf.to_vec();
    apply_mask(&mut ours, KEY, 0);
    let mut peer = buf.to_vec();
    fastwebsockets::unmask(&mut peer, KEY);
    assert_eq!(ours, want);
    assert_eq!(peer, want);
}

// ---- UTF-8 ----

/// `len` bytes of ASCII text.
fn ascii_text(len: usize) -> Vec<u8> {
    let line = b"The quick brown fox jumps over the lazy dog 0123456789.\n";
    line.iter().copied().cycle().take(len).collect()
}

/// `len` bytes of valid UTF-8 in which one character in three is multi-byte (2, 3 and 4 bytes in
/// turn), padded with ASCII to the exact length.
fn mixed_text(len: usize) -> Vec<u8> {
    let multi = ["é", "中", "𝄞", "ß", "€", "😀"];
    let mut s = String::with_capacity(len + 4);
    let mut i = 0;
    loop {
        let piece = multi[i % multi.len()];
        let next = 2 + piece.len();
        if s.len() + next > len {
            break;
        }
        s.push(char::from(b'a' + (i % 26) as u8));
        s.push(' ');
        s.push_str(piece);
        i += 1;
    }
    while s.len() < len {
        s.push('x');
    }
    s.into_bytes()
}

fn utf8(c: &mut Criterion) {
    let mut g = c.benchmark_group("utf8");
    for (size_name, len) in [("64B", 64), ("4KiB", 4 << 10), ("1MiB", 1 << 20)] {
        for (text_name, text) in [("ascii", ascii_text(len)), ("mixed", mixed_text(len))] {
            assert_eq!(text.len(), len);
            assert!(std::str::from_utf8(&text).is_ok());
            assert!(validate(&text).is_ok());
            assert!(feed_pieces(&text));
            let param = format!("{text_name}-{size_name}");
            g.throughput(Throughput::Bytes(len as u64));
            g.bench_with_input(BenchmarkId::new("c10k-validate", &param), &text, |b, t| {
                b.iter(|| validate(black_box(t)).is_ok())
            });
            g.bench_with_input(BenchmarkId::new("c10k-feed-4KiB", &param), &text, |b, t| {
                b.iter(|| feed_pieces(black_box(t)))
            });
            g.bench_with_input(BenchmarkId::new("std", &param), &text, |b, t| {
                b.iter(|| std::str::from_utf8(black_box(t)).is_ok())
            });
        }
    }
    g.finish();
}

/// Validates `text` as a stream of 4 KiB pieces.
fn feed_pieces(text: &[u8]) -> bool {
    let mut v = Utf8Validator::new();
    text.chunks(4 << 10).all(|piece| v.feed(piece).is_ok()) && v.finish().is_ok()
}

// ---- handshake ----

/// What a desktop browser sends to open a WebSocket (502 bytes, 12 header fields).
const BROWSER_REQUEST: &[u8] = b"GET /chat?room=lobby HTTP/1.1\r\n\
Host: example.com:8080\r\n\
Connection: Upgrade\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
Upgrade: websocket\r\n\
Origin: https://example.com\r\n\
Sec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
\r\n";

fn handshake(c: &mut Criterion) {
    use tungstenite::handshake::machine::TryParse as _;
    use tungstenite::handshake::server::{Request as TRequest, create_response, write_response};

    let limits = HeadLimits::default();
    let req = parse_request(BROWSER_REQUEST, &limits).unwrap().unwrap();
    assert!(req.is_websocket());
    assert_eq!(req.head_len(), BROWSER_REQUEST.len());
    assert_eq!((BROWSER_REQUEST.len(), req.headers().len()), (502, 12));
    let mut out = Vec::with_capacity(256);
    write_accept(&req, &Accept::default(), &mut out).unwrap();
    assert!(out.windows(28).any(|w| w == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    let (n, treq) = TRequest::try_parse(BROWSER_REQUEST).unwrap().unwrap();
    assert_eq!(n, BROWSER_REQUEST.len());
    let tresp = create_response(&treq).unwrap();
    assert_eq!(
        tresp.headers()["Sec-WebSocket-Accept"],
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );

    let mut g = c.benchmark_group("handshake");
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new("c10k", "parse"), |b| {
        b.iter(|| parse_request(black_box(BROWSER_REQUEST), &limits).map(|r| r.map(|r| r.head_len())))
    });
    g.bench_function(BenchmarkId::new("tungstenite", "parse"), |b| {
        // Their parse does not check the upgrade or hash the key; `create_response` does.
        b.iter(|| {
            let (_, req) = TRequest::try_parse(black_box(BROWSER_REQUEST)).unwrap().unwrap();
            create_response(&req).is_ok()
        })
    });
    // The two parts of `parse_request` that other crates do: the HTTP parse and the key hash.
    g.bench_function(BenchmarkId::new("httparse", "parse"), |b| {
        b.iter(|| {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            req.parse(black_box(BROWSER_REQUEST)).map(|s| s.is_complete())
        })
    });
    g.bench_function(BenchmarkId::new("c10k", "accept_key"), |b| {
        b.iter(|| accept_key(black_box(b"dGhlIHNhbXBsZSBub25jZQ==")))
    });
    let mut out = Vec::with_capacity(256);
    g.bench_function(BenchmarkId::new("c10k", "parse+accept"), |b| {
        b.iter(|| {
            out.clear();
            let req = parse_request(black_box(BROWSER_REQUEST), &limits)
                .unwrap()
                .unwrap();
            write_accept(&req, &Accept::default(), &mut out).unwrap();
            out.len()
        })
    });
    g.bench_function(BenchmarkId::new("tungstenite", "parse+accept"), |b| {
        b.iter(|| {
            out.clear();
            let (_, req) = TRequest::try_parse(black_box(BROWSER_REQUEST)).unwrap().unwrap();
            let resp = create_response(&req).unwrap();
            write_response(&mut out, &resp).unwrap();
            out.len()
        })
    });
    g.finish();
}

// ---- connection read ----

/// A masked frame from a client: FIN, `opcode`, `payload` masked with [`KEY`].
fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let header = proto::frame::encode_header(
        true,
        0,
        proto::OpCode::from_u8(opcode).unwrap(),
        payload.len() as u64,
        Some(KEY),
    );
    let mut frame = header.as_bytes().to_vec();
    let start = frame.len();
    frame.extend_from_slice(payload);
    apply_mask(&mut frame[start..], KEY, 0);
    frame
}

/// A `Read + Write` stream over a byte slice that discards what is written.
struct SliceStream<'a>(&'a [u8]);

impl io::Read for SliceStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl io::Write for SliceStream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn conn_read(c: &mut Criterion) {
    use tungstenite::protocol::{Role as TRole, WebSocketContext};

    let text = masked_frame(0x1, b"{\"op\":\"tick\",\"n\":42}");
    let binary: Vec<u8> = (0..16 << 10).map(|i: u32| (i * 13 + 5) as u8).collect();
    let binary = masked_frame(0x2, &binary);

    let mut g = c.benchmark_group("conn_read");
    g.throughput(Throughput::Elements(1));
    for (name, frame, batch) in [
        // A 26-byte copy per iteration is cheap to hold by the thousand.
        ("text-20B", &text, BatchSize::SmallInput),
        // 16 fresh 16 KiB frames per timed batch: 256 KiB, which stays in the 2 MiB L2 cache, as
        // a payload just copied from the socket does; the batch amortises the clock reads.
        ("binary-16KiB", &binary, BatchSize::NumIterations(16)),
    ] {
        // Check once: one read takes the whole frame and yields the message, borrowed.
        let mut conn = Connection::server(Config::default());
        let mut out = Vec::new();
        let mut input = frame.clone();
        let read = conn.read(&mut input, &mut out).unwrap();
        assert_eq!(read.consumed, frame.len());
        match read.event {
            Some(Event::Message(m @ (Message::Text(_) | Message::Binary(_)))) => assert!(m.is_borrowed()),
            other => panic!("unexpected {other:?}"),
        }
        assert!(out.is_empty());
        let mut ctx = WebSocketContext::new(TRole::Server, None);
        let m = ctx.read(&mut SliceStream(frame)).unwrap();
        assert!(m.is_text() || m.is_binary());

        g.bench_with_input(BenchmarkId::new("c10k", name), frame, |b, frame| {
            b.iter_batched_ref(
                || frame.clone(),
                |input| {
                    conn.read(black_box(input.as_mut_slice()), &mut out)
                        .map(|r| r.consumed)
                },
                batch,
            )
        });
        // tungstenite copies the bytes into its own buffer, so it reads the same input each time.
        g.bench_with_input(BenchmarkId::new("tungstenite", name), frame, |b, frame| {
            b.iter(|| ctx.read(&mut SliceStream(black_box(frame))).map(|m| m.len()))
        });
    }
    g.finish();
}

// ---- permessage-deflate ----

/// 1 KiB of JSON-like text: the kind of message permessage-deflate is for.
fn json_1k() -> Vec<u8> {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < 1024 {
        s.push_str(&format!(
            "{{\"id\":{},\"user\":\"user{}\",\"event\":\"{}\",\"ok\":{}}},",
            1000 + i * 37,
            i % 23,
            ["click", "view", "scroll"][i % 3],
            i % 2 == 0
        ));
        i += 1;
    }
    s.truncate(1024);
    s.into_bytes()
}

#[cfg(feature = "deflate")]
fn deflate(c: &mut Criterion) {
    use miniz_oxide::deflate::core::{CompressorOxide, create_comp_flags_from_zip_params};
    use miniz_oxide::inflate::stream::InflateState;
    use miniz_oxide::{DataFormat, MZFlush};
    use proto::deflate::{Compressor, Decompressor, TAIL};

    let msg = json_1k();

    // c10k: flate2 over zlib-rs.
    let mut zc = Compressor::new(15, 6);
    let mut zd = Decompressor::new(15);
    let mut z_out = Vec::with_capacity(2048);
    let mut z_back = Vec::with_capacity(2048);
    let mut c10k_round_trip = |msg: &[u8], out: &mut Vec<u8>, back: &mut Vec<u8>| {
        out.clear();
        zc.compress_message(msg, out);
        zc.reset();
        back.clear();
        out.extend_from_slice(&TAIL);
        zd.inflate::<proto::deflate::InflateError>(out, back, 1 << 20, &mut |_| Ok(()))
            .unwrap();
        zd.reset();
        out.len()
    };

    // miniz_oxide: its streaming API, raw DEFLATE.
    let flags = create_comp_flags_from_zip_params(6, -15, 0);
    let mut mc = Box::new(CompressorOxide::new(flags));
    let mut md = InflateState::new_boxed(DataFormat::Raw);
    let mut m_out = vec![0u8; 4096];
    let mut m_back = vec![0u8; 4096];
    let mut miniz_round_trip = |msg: &[u8], out: &mut [u8], back: &mut [u8]| {
        let r = miniz_oxide::deflate::stream::deflate(&mut mc, msg, out, MZFlush::Sync);
        assert!(r.status.is_ok() && r.bytes_consumed == msg.len());
        let n = r.bytes_written;
        assert!(out[..n].ends_with(&TAIL));
        mc.reset();
        let r = miniz_oxide::inflate::stream::inflate(&mut md, &out[..n], back, MZFlush::Sync);
        assert!(r.status.is_ok());
        assert_eq!(r.bytes_written, msg.len());
        md.reset(DataFormat::Raw);
        n - TAIL.len()
    };

    // Check once: both round trips give the message back; print the compressed sizes.
    let zn = c10k_round_trip(&msg, &mut z_out, &mut z_back);
    assert_eq!(z_back, msg);
    let mn = miniz_round_trip(&msg, &mut m_out, &mut m_back);
    assert_eq!(&m_back[..msg.len()], &msg[..]);
    eprintln!(
        "deflate: 1024 bytes -> {} (c10k, zlib-rs) / {} (miniz_oxide) bytes",
        zn - TAIL.len(),
        mn
    );

    let mut g = c.benchmark_group("deflate");
    g.throughput(Throughput::Bytes(msg.len() as u64));
    g.bench_function("c10k-zlib-rs/round-trip-1KiB", |b| {
        b.iter(|| c10k_round_trip(black_box(&msg), &mut z_out, &mut z_back))
    });
    g.bench_function("miniz_oxide/round-trip-1KiB", |b| {
        b.iter(|| miniz_round_trip(black_box(&msg), &mut m_out, &mut m_back))
    });
    g.finish();
}

#[cfg(not(feature = "deflate"))]
fn deflate(_: &mut Criterion) {
    let _ = json_1k();
}
