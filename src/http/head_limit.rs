//! Request-head limits, enforced in front of actix-http's HTTP/1 parser: a request line
//! over [`MAX_REQUEST_LINE_BYTES`] gets `414 URI Too Long`, a header section over
//! [`MAX_HEADER_SECTION_BYTES`] or with more than [`MAX_HEADER_FIELDS`] fields gets
//! `431 Request Header Fields Too Large`, and the connection is then closed cleanly.
//!
//! Why a layer of our own: actix-http's limits are fixed constants, not configuration (a
//! request head in 128 KiB, at most 96 header fields; a URI over 64 KiB fails `http::Uri`
//! and is answered 400), and after its 431 it closes the socket with the rest of the
//! client's request still unread, so the kernel sends a reset, which often destroys the
//! answer before the client reads it (measured: a 1 MB header or URL got "connection reset
//! by peer"). Go's net/http, which Consul uses, answers 431 for heads over 1 MiB and then
//! closes gently ("closeWriteAndWait"). So every connection goes through [`GuardedStream`],
//! which watches the bytes actix reads: while a request head comes in it counts the request
//! line, the header bytes and the fields; on a head over a limit it hides that head from
//! actix and reports end of stream, actix finishes whatever earlier requests it holds and
//! lets go of the connection, and we write the error answer ourselves, half-close, and
//! read (and discard) what the client still sends for a bounded time before closing.
//!
//! To find the next request head on a keep-alive connection the guard skips request bodies
//! by their `Content-Length`. Anything it cannot frame with certainty the same way actix
//! does (`Transfer-Encoding`, upgrades, `CONNECT`, odd or repeated lengths, a head httparse
//! rejects) turns the guard off for the rest of that connection: actix's own limits (and
//! errors) then apply, which is the behaviour without the guard, never a wrong answer.
//!
//! The limits sit below actix's 128 KiB head buffer (so we always decide before actix
//! does), which makes our header limit smaller than Go's 1 MiB: a client sending 60 KiB to
//! 1 MiB of headers is served by Consul and answered 431 here.

use actix_http::body::MessageBody;
use actix_http::h1::H1Service;
use actix_http::{Extensions, HttpService, Request, Response};
use actix_service::{IntoServiceFactory, Service, ServiceFactory};
use actix_web::body::BoxBody;
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

/// Longest request line (method, URL, version and line end, with any empty lines before
/// it), in bytes; longer → 414. It keeps every URL we pass on under `http::Uri`'s own
/// 65534-byte cap, so actix never answers 400 for a long URL.
pub const MAX_REQUEST_LINE_BYTES: usize = 64 * 1024;

/// Longest header section (the lines after the request line, with the empty line that
/// ends it), in bytes; longer → 431.
pub const MAX_HEADER_SECTION_BYTES: usize = 60 * 1024;

/// Most header fields in one request; more → 431. actix-http parses at most 96.
pub const MAX_HEADER_FIELDS: usize = 96;

/// actix-http's fixed head buffer (`MAX_BUFFER_SIZE`, private): a head still incomplete at
/// this size is answered 431 by actix itself, with a reset. Ours must decide first.
const ACTIX_HEAD_BUFFER_BYTES: usize = 131_072;
const _: () = assert!(MAX_REQUEST_LINE_BYTES + MAX_HEADER_SECTION_BYTES < ACTIX_HEAD_BUFFER_BYTES);

/// After an error answer, how long we keep reading what the client still sends (its own
/// oversized head) before closing: closing with unread bytes resets the connection, and a
/// reset can destroy our answer before the client reads it. Go waits 500 ms; a client on a
/// slow link may still be sending a megabyte, so we allow more.
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// Most bytes read and discarded while lingering; a client sending more is cut off.
pub const LINGER_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Writing the error answer may take this long at most (it is a few dozen bytes).
const ANSWER_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a request head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadTooLarge {
    /// 414: the request line is over [`MAX_REQUEST_LINE_BYTES`].
    UriTooLong,
    /// 431: the header section is over [`MAX_HEADER_SECTION_BYTES`] or
    /// [`MAX_HEADER_FIELDS`].
    HeaderFieldsTooLarge,
}

impl HeadTooLarge {
    /// The whole answer, written raw: Go's shape (plain-text status line as the body,
    /// `Connection: close`) plus a length.
    pub fn response(self) -> Vec<u8> {
        let status = match self {
            HeadTooLarge::UriTooLong => "414 URI Too Long",
            HeadTooLarge::HeaderFieldsTooLarge => "431 Request Header Fields Too Large",
        };
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{status}",
            status.len()
        )
        .into_bytes()
    }
}

/// What [`HeadScanner::feed`] decided about a chunk of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Hand the whole chunk on.
    Pass,
    /// A head is over a limit: hand on only the first `keep` bytes (the end of what came
    /// before that head), then report end of stream.
    Refuse { keep: usize, why: HeadTooLarge },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a request head.
    Head,
    /// Skipping this many body bytes.
    Body(u64),
    /// Framing unknown: no more checks on this connection.
    Off,
    /// A head was refused: nothing more is handed on.
    Refused(HeadTooLarge),
}

/// Follows the request heads in a byte stream (pure; no I/O).
#[derive(Debug)]
pub struct HeadScanner {
    phase: Phase,
    /// The current head so far (bounded by the limits).
    head: Vec<u8>,
    /// Where the current line starts in `head`.
    line_start: usize,
    /// Where the header section starts in `head`, once the request line is complete.
    headers_start: Option<usize>,
    fields: usize,
}

impl Default for HeadScanner {
    fn default() -> Self {
        HeadScanner {
            phase: Phase::Head,
            head: Vec::new(),
            line_start: 0,
            headers_start: None,
            fields: 0,
        }
    }
}

impl HeadScanner {
    /// Follow the next `bytes` of the stream.
    pub fn feed(&mut self, bytes: &[u8]) -> Verdict {
        let mut at = 0;
        while at < bytes.len() {
            match self.phase {
                Phase::Off => return Verdict::Pass,
                Phase::Refused(why) => return Verdict::Refuse { keep: 0, why },
                Phase::Body(left) => {
                    let take = left.min((bytes.len() - at) as u64);
                    at += take as usize; // take <= bytes.len() - at
                    self.phase = match left - take {
                        0 => Phase::Head,
                        more => Phase::Body(more),
                    };
                }
                Phase::Head => {
                    // The head starts in this chunk when nothing of it came before.
                    let head_start = self.head.is_empty().then_some(at);
                    match self.scan_head(&bytes[at..]) {
                        Ok(used) => at += used,
                        Err(why) => {
                            self.phase = Phase::Refused(why);
                            self.head = Vec::new();
                            return Verdict::Refuse {
                                keep: head_start.unwrap_or(0),
                                why,
                            };
                        }
                    }
                }
            }
        }
        Verdict::Pass
    }

    /// Take head bytes until the head ends (then frame its body) or `bytes` run out.
    /// Returns how many bytes were taken, or why the head is refused.
    fn scan_head(&mut self, bytes: &[u8]) -> Result<usize, HeadTooLarge> {
        for (i, &byte) in bytes.iter().enumerate() {
            self.head.push(byte);
            // Limits first: the byte that ends a line or the head counts too.
            match self.headers_start {
                None if self.head.len() > MAX_REQUEST_LINE_BYTES => {
                    return Err(HeadTooLarge::UriTooLong)
                }
                Some(start) if self.head.len() - start > MAX_HEADER_SECTION_BYTES => {
                    return Err(HeadTooLarge::HeaderFieldsTooLarge)
                }
                _ => {}
            }
            if byte == b'\n' {
                let blank = matches!(&self.head[self.line_start..], b"\n" | b"\r\n");
                match self.headers_start {
                    // Empty lines before the request line are skipped (as httparse does)
                    // but count towards the request line's bytes.
                    None if blank => {}
                    None => self.headers_start = Some(self.head.len()),
                    Some(_) if blank => {
                        self.end_of_head();
                        return Ok(i + 1);
                    }
                    Some(_) => {
                        self.fields += 1;
                        if self.fields > MAX_HEADER_FIELDS {
                            return Err(HeadTooLarge::HeaderFieldsTooLarge);
                        }
                    }
                }
                self.line_start = self.head.len();
            }
        }
        Ok(bytes.len())
    }

    /// A complete head: find its body the way actix-http will, or stop following.
    fn end_of_head(&mut self) {
        self.phase = match body_length(&self.head) {
            Some(0) => Phase::Head,
            Some(length) => Phase::Body(length),
            None => Phase::Off,
        };
        self.head.clear();
        if self.head.capacity() > 16 * 1024 {
            self.head = Vec::new(); // don't keep a big head's buffer for the connection's life
        }
        self.line_start = 0;
        self.headers_start = None;
        self.fields = 0;
    }
}

/// The body length of a complete request head when it is certain: no body, or exactly one
/// plain `Content-Length`. `None` for everything actix frames otherwise or refuses.
fn body_length(head: &[u8]) -> Option<u64> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADER_FIELDS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return None,
    }
    if request
        .method
        .is_none_or(|m| m.eq_ignore_ascii_case("CONNECT"))
    {
        return None;
    }
    let mut length = None;
    for header in request.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("transfer-encoding") || name.eq_ignore_ascii_case("upgrade") {
            return None;
        }
        if name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value).ok()?.trim();
            if length.is_some() || value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            length = Some(value.parse::<u64>().ok()?);
        }
    }
    Some(length.unwrap_or(0))
}

/// One connection's socket and guard, shared by actix's dispatcher (through
/// [`GuardedStream`]) and the task that answers a refused head once actix is done.
struct Guarded {
    stream: TcpStream,
    scanner: HeadScanner,
    refused: Option<HeadTooLarge>,
}

/// The connection as actix-http sees it: the TCP stream, with refused heads hidden.
pub struct GuardedStream {
    shared: Rc<RefCell<Guarded>>,
    peer: Option<SocketAddr>,
}

impl GuardedStream {
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut guarded = self.shared.borrow_mut();
        let guarded = &mut *guarded;
        if guarded.refused.is_some() {
            return Poll::Ready(Ok(())); // end of stream, as far as actix is concerned
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut guarded.stream).poll_read(cx, buf))?;
        if let Verdict::Refuse { keep, why } = guarded.scanner.feed(&buf.filled()[before..]) {
            tracing::debug!(peer = ?self.peer, ?why, "request head over its limit");
            guarded.refused = Some(why);
            buf.set_filled(before + keep);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.shared.borrow_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.shared.borrow_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.shared.borrow().stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.shared.borrow_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut guarded = self.shared.borrow_mut();
        if guarded.refused.is_some() {
            // Our answer still has to go out on this socket.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut guarded.stream).poll_shutdown(cx)
    }
}

/// Serve a TCP stream with actix-http's HTTP/1 service over a [`GuardedStream`]; when a
/// head was refused, answer it once the service is done with the connection.
pub fn serve<S>(
    service: S,
) -> impl ServiceFactory<
    TcpStream,
    Config = (),
    Response = (),
    Error = actix_http::error::DispatchError,
    InitError = (),
>
where
    S: ServiceFactory<
        (GuardedStream, Option<SocketAddr>),
        Config = (),
        Response = (),
        Error = actix_http::error::DispatchError,
        InitError = (),
    >,
    <S::Service as Service<(GuardedStream, Option<SocketAddr>)>>::Future: 'static,
{
    actix_service::apply_fn_factory(service, |stream: TcpStream, service: &S::Service| {
        let peer = stream.peer_addr().ok();
        let shared = Rc::new(RefCell::new(Guarded {
            stream,
            scanner: HeadScanner::default(),
            refused: None,
        }));
        let served = service.call((
            GuardedStream {
                shared: shared.clone(),
                peer,
            },
            peer,
        ));
        async move {
            let result = served.await;
            // The dispatcher (and its handle on the stream) is gone now.
            let Ok(guarded) = Rc::try_unwrap(shared).map(RefCell::into_inner) else {
                return result;
            };
            match guarded.refused {
                Some(why) => {
                    answer_and_close(guarded.stream, why).await;
                    Ok(())
                }
                None => result,
            }
        }
    })
}

/// Write the error answer, half-close, and read what the client still sends (bounded in
/// time and bytes) so that the close does not reset the connection under the answer.
pub async fn answer_and_close(mut stream: TcpStream, why: HeadTooLarge) {
    let written = timeout(ANSWER_WRITE_TIMEOUT, stream.write_all(&why.response())).await;
    if !matches!(written, Ok(Ok(()))) {
        return;
    }
    if stream.shutdown().await.is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER_TIMEOUT;
    let mut discarded = 0usize;
    let mut sink = vec![0u8; 16 * 1024];
    while discarded < LINGER_MAX_BYTES {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => discarded += n,
            _ => return, // the client's end, an error, or out of time
        }
    }
}

/// The HTTP/1 service for one listener, the way actix-web's `HttpServer` builds it (same
/// timeouts), over [`GuardedStream`]. `on_connect` sees each connection's peer.
pub fn h1_service<F, S, B>(
    app: F,
    local: SocketAddr,
    on_connect: impl Fn(Option<SocketAddr>, &mut Extensions) + 'static,
    shutdown: actix_server::GracefulShutdownSignal,
) -> H1Service<GuardedStream, S, B>
where
    F: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = ()>,
    S::Future: 'static,
    S::Error: Into<Response<BoxBody>> + 'static,
    S::InitError: std::fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    B: MessageBody + 'static,
{
    HttpService::build()
        .graceful_shutdown_signal(move || {
            let signal = shutdown.clone();
            async move { signal.notified().await }
        })
        // actix-web's defaults, which the agent always had.
        .keep_alive(actix_http::KeepAlive::default())
        .client_request_timeout(Duration::from_secs(5))
        .client_disconnect_timeout(Duration::from_secs(1))
        .h1_allow_half_closed(true)
        .local_addr(local)
        .on_connect_ext(move |io: &GuardedStream, data: &mut Extensions| {
            on_connect(io.peer_addr(), data)
        })
        .h1(app)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(scanner: &mut HeadScanner, bytes: &[u8], piece: usize) -> Vec<Verdict> {
        bytes
            .chunks(piece.max(1))
            .map(|c| scanner.feed(c))
            .collect()
    }

    fn refusal(bytes: &[u8], piece: usize) -> Option<HeadTooLarge> {
        let mut scanner = HeadScanner::default();
        feed_all(&mut scanner, bytes, piece)
            .into_iter()
            .find_map(|v| match v {
                Verdict::Refuse { why, .. } => Some(why),
                Verdict::Pass => None,
            })
    }

    fn get_with_url_of(len: usize) -> Vec<u8> {
        let path = format!("/{}", "a".repeat(len - 1));
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
    }

    #[test]
    fn request_line_limit_is_exact() {
        let line_overhead = "GET  HTTP/1.1\r\n".len();
        let longest = get_with_url_of(MAX_REQUEST_LINE_BYTES - line_overhead);
        let over = get_with_url_of(MAX_REQUEST_LINE_BYTES - line_overhead + 1);
        for piece in [1, 7, 4096, usize::MAX] {
            assert_eq!(refusal(&longest, piece), None, "piece {piece}");
            assert_eq!(
                refusal(&over, piece),
                Some(HeadTooLarge::UriTooLong),
                "piece {piece}"
            );
        }
        // A line with no end at all is refused as soon as it passes the limit.
        let endless = vec![b'a'; MAX_REQUEST_LINE_BYTES + 1];
        assert_eq!(refusal(&endless, 1000), Some(HeadTooLarge::UriTooLong));
        // Every URL we pass on fits http::Uri.
        assert!(MAX_REQUEST_LINE_BYTES - line_overhead <= 65534);
    }

    #[test]
    fn header_section_limits_bytes_and_fields() {
        let head = |value_len: usize| {
            let mut h = b"GET / HTTP/1.1\r\nX: ".to_vec();
            h.extend(std::iter::repeat_n(b'v', value_len));
            h.extend_from_slice(b"\r\n\r\n");
            h
        };
        // Header section = "X: " + value + "\r\n" + "\r\n".
        let longest = MAX_HEADER_SECTION_BYTES - 3 - 4;
        assert_eq!(refusal(&head(longest), 100), None);
        assert_eq!(
            refusal(&head(longest + 1), 100),
            Some(HeadTooLarge::HeaderFieldsTooLarge)
        );
        let fields = |n: usize| {
            let mut h = b"GET / HTTP/1.1\r\n".to_vec();
            for i in 0..n {
                h.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
            }
            h.extend_from_slice(b"\r\n");
            h
        };
        assert_eq!(refusal(&fields(MAX_HEADER_FIELDS), 5), None);
        assert_eq!(
            refusal(&fields(MAX_HEADER_FIELDS + 1), 5),
            Some(HeadTooLarge::HeaderFieldsTooLarge)
        );
        // Bare LF line ends count the same way.
        assert_eq!(refusal(b"GET / HTTP/1.1\nHost: x\n\n", 1), None);
    }

    #[test]
    fn bodies_are_skipped_and_the_next_head_is_checked() {
        let body = "u".repeat(MAX_REQUEST_LINE_BYTES * 2); // a body may be anything
        let first = format!(
            "PUT /v1/kv/a HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let second = get_with_url_of(MAX_REQUEST_LINE_BYTES + 10);
        let mut stream = first.clone().into_bytes();
        stream.extend_from_slice(b"GET /ok HTTP/1.1\r\n\r\n");
        for piece in [1, 333, usize::MAX] {
            assert_eq!(refusal(&stream, piece), None, "piece {piece}");
        }
        // All in one chunk: the bytes before the refused head are still handed on.
        let mut scanner = HeadScanner::default();
        let mut both = stream.clone();
        both.extend_from_slice(&second);
        assert_eq!(
            scanner.feed(&both),
            Verdict::Refuse {
                keep: stream.len(),
                why: HeadTooLarge::UriTooLong
            }
        );
        // Refused for good: nothing more is handed on.
        assert!(matches!(
            scanner.feed(b"GET / HTTP/1.1\r\n\r\n"),
            Verdict::Refuse { keep: 0, .. }
        ));
        // Split over reads: the head started in an earlier read, so nothing is kept.
        let mut scanner = HeadScanner::default();
        assert_eq!(scanner.feed(&both[..stream.len() + 10]), Verdict::Pass);
        assert!(matches!(
            scanner.feed(&both[stream.len() + 10..]),
            Verdict::Refuse { keep: 0, .. }
        ));
    }

    #[test]
    fn unknown_framing_turns_the_guard_off() {
        let long = get_with_url_of(MAX_REQUEST_LINE_BYTES * 2);
        for head in [
            "PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /x HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "CONNECT x:1 HTTP/1.1\r\n\r\n",
            "PUT /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nv",
            "PUT /x HTTP/1.1\r\nContent-Length: +1\r\n\r\nv",
            "PUT /x HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "G\x01T /x HTTP/1.1\r\n\r\n",
        ] {
            let mut stream = head.as_bytes().to_vec();
            stream.extend_from_slice(&long);
            assert_eq!(refusal(&stream, 64), None, "{head:?}");
        }
        // A plain length, a zero length and no length keep it on.
        for head in [
            "PUT /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            "PUT /x HTTP/1.1\r\ncontent-length:  0 \r\n\r\n",
            "\r\n\r\nGET /x HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            let mut stream = head.as_bytes().to_vec();
            stream.extend_from_slice(&long);
            assert_eq!(
                refusal(&stream, 64),
                Some(HeadTooLarge::UriTooLong),
                "{head:?}"
            );
        }
    }

    #[test]
    fn random_streams_never_panic_and_stay_bounded() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..100 {
            let mut scanner = HeadScanner::default();
            for _ in 0..rng.random_range(1..20) {
                let len = rng.random_range(0..5000);
                let chunk: Vec<u8> = (0..len)
                    .map(|_| match rng.random_range(0..6) {
                        0 => b'\n',
                        1 => b'\r',
                        2 => b':',
                        _ => rng.random(),
                    })
                    .collect();
                if let Verdict::Refuse { keep, .. } = scanner.feed(&chunk) {
                    assert!(keep <= chunk.len());
                }
                assert!(scanner.head.len() <= MAX_REQUEST_LINE_BYTES + MAX_HEADER_SECTION_BYTES);
            }
        }
    }

    #[test]
    fn answers_have_the_status_and_a_matching_length() {
        for (why, status) in [
            (HeadTooLarge::UriTooLong, "414 URI Too Long"),
            (
                HeadTooLarge::HeaderFieldsTooLarge,
                "431 Request Header Fields Too Large",
            ),
        ] {
            let text = String::from_utf8(why.response()).unwrap();
            assert!(
                text.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                "{text}"
            );
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.contains(&format!("Content-Length: {}", body.len())));
            assert!(head.contains("Connection: close"));
            assert_eq!(body, status);
        }
    }
}
