//! `HTTP_GET` and `SSL_GET` (keepalived's `check_http.c`, `check_ssl.c`,
//! `lib/html.c`).
//!
//! Per url: connect, (TLS handshake without certificate verification),
//! send keepalived's request and read the response with hyper's HTTP/1
//! client connection over that stream. The response ends where its
//! framing says or when the server closes. Each step and each read is
//! bounded by `connect_timeout`. The url succeeds when a header was
//! received, the status code is accepted and, if a digest is configured,
//! the MD5 of the body matches.

mod wire;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::header::{HeaderValue, CONNECTION, HOST, USER_AGENT};
use hyper::{Request, Response, Uri, Version};
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::timeout;

use crate::config::{CheckerConfig, HttpCheck, HttpProtocol, Url};
use crate::Outcome;
use wire::{Tally, Wire};

/// Largest response header accepted.
const MAX_HEADER: usize = 64 * 1024;

pub(crate) async fn check(
    cfg: &CheckerConfig,
    h: &HttpCheck,
    target: SocketAddr,
    limit: Duration,
) -> Outcome {
    let name = cfg.kind.name();
    for url in &h.urls {
        if let Err(e) = fetch(cfg, h, url, target, limit).await {
            return Outcome::down(format!("{name} {target} url {}: {e}", url.path));
        }
    }
    let n = h.urls.len();
    Outcome::up(format!(
        "{name} {target}: {n} url{} ok",
        if n == 1 { "" } else { "s" }
    ))
}

/// keepalived's `request_template`: `GET`, its `User-Agent`, `Connection:
/// close` unless plain HTTP/1.0, and `Host`, in that order (hyper keeps
/// the insertion order and, with title-case headers, keepalived's case).
fn build_request(
    h: &HttpCheck,
    url: &Url,
    target: SocketAddr,
) -> Result<Request<Empty<Bytes>>, String> {
    let host = match url.virtualhost.as_ref().or(h.virtualhost.as_ref()) {
        Some(v) => v.clone(),
        None => match target {
            SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        },
    };
    let (version, close) = match h.protocol {
        HttpProtocol::Http10 => (Version::HTTP_10, false),
        HttpProtocol::Http10Close => (Version::HTTP_10, true),
        HttpProtocol::Http11 => (Version::HTTP_11, true),
    };
    let uri: Uri = url.path.parse().map_err(|e| format!("invalid path: {e}"))?;
    let host = HeaderValue::from_str(&host).map_err(|e| format!("invalid Host {host:?}: {e}"))?;
    let mut req = Request::get(uri).version(version);
    req = req.header(USER_AGENT, "KeepAliveClient");
    if close {
        req = req.header(CONNECTION, "close");
    }
    req.header(HOST, host)
        .body(Empty::new())
        .map_err(|e| format!("invalid request: {e}"))
}

async fn fetch(
    cfg: &CheckerConfig,
    h: &HttpCheck,
    url: &Url,
    target: SocketAddr,
    limit: Duration,
) -> Result<(), String> {
    let tcp = super::connect(cfg, target, limit).await?;
    let req = build_request(h, url, target)?;
    if h.tls {
        let name = match &h.sni {
            Some(n) => {
                ServerName::try_from(n.clone()).map_err(|e| format!("sni_name {n:?}: {e}"))?
            }
            None => ServerName::IpAddress(target.ip().into()),
        };
        let connector = tokio_rustls::TlsConnector::from(tls_config());
        let tls = match timeout(limit, connector.connect(name, tcp)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(format!("TLS handshake: {e}")),
            Err(_) => return Err(format!("TLS handshake timeout ({limit:?})")),
        };
        exchange(tls, req, url, limit).await
    } else {
        exchange(tcp, req, url, limit).await
    }
}

/// One request on a fresh connection: hyper writes it and frames the
/// response; we judge it the way keepalived's `http_handle_response` does.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: S,
    req: Request<Empty<Bytes>>,
    url: &Url,
    limit: Duration,
) -> Result<(), String> {
    let tally = Arc::new(Tally::default());
    let io = TokioIo::new(Wire::new(s, tally.clone()));
    let (mut sender, conn) = client_builder()
        .handshake::<_, Empty<Bytes>>(io)
        .await
        .map_err(|e| format!("cannot send request: {e}"))?;
    // The connection future does the I/O; once it is done (the server
    // closed, or the response ended) the body may still hold data, so it
    // stays pending and the exchange decides.
    let drive = async move {
        let _ = conn.await;
        std::future::pending::<Result<(), String>>().await
    };
    let exchange = async {
        let resp = match timeout(limit, sender.send_request(req)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(describe(&e, &tally)),
            Err(_) => return Err(format!("read timeout ({limit:?})")),
        };
        let (status, digest) = read_body(resp, limit).await?;
        judge(url, status, digest)
    };
    // The exchange first: the request is queued before the connection
    // reads, so whatever the server sends is the response to it.
    tokio::select! {
        biased;
        r = exchange => r,
        r = drive => r,
    }
}

fn client_builder() -> http1::Builder {
    let mut b = http1::Builder::new();
    // keepalived only looks for the status code and Content-Length:
    // accept what lenient parsers accept elsewhere in the header.
    b.title_case_headers(true)
        .allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .ignore_invalid_headers_in_responses(true)
        .max_buf_size(MAX_HEADER);
    b
}

/// The status code and the MD5 of the body. keepalived reads until the
/// end of the stream and treats it as the end of the response, so a body
/// cut short is not an error here either.
async fn read_body(resp: Response<Incoming>, limit: Duration) -> Result<(u16, Md5), String> {
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut md5 = Md5::new();
    loop {
        let frame = match timeout(limit, body.frame()).await {
            Ok(Some(Ok(f))) => f,
            Ok(None) => break,
            Ok(Some(Err(e))) if wire::cut_short(&e) => break,
            Ok(Some(Err(e))) => return Err(format!("read error: {e}")),
            Err(_) => return Err(format!("read timeout ({limit:?})")),
        };
        if let Ok(data) = frame.into_data() {
            md5.update(&data);
        }
    }
    Ok((status, md5))
}

fn judge(url: &Url, status: u16, md5: Md5) -> Result<(), String> {
    if !url.status_ok(status) {
        return Err(format!("HTTP status code {status} not accepted"));
    }
    if let Some(want) = &url.digest {
        let got = hex(&md5.finalize());
        if !got.eq_ignore_ascii_case(want) {
            return Err(format!("MD5 digest mismatch: got {got}, want {want}"));
        }
    }
    Ok(())
}

/// keepalived's words for a response that never got a usable header.
fn describe(e: &hyper::Error, tally: &Tally) -> String {
    // A request the connection gave up on carries the connection's error.
    let e = match std::error::Error::source(e).and_then(|s| s.downcast_ref()) {
        Some(cause) if e.is_canceled() => cause,
        _ => e,
    };
    if let Some(io) = wire::io_source(e) {
        if tally.write_failed() {
            return format!("cannot send request: {io}");
        }
        return format!("read error: {io}");
    }
    // hyper tells "too large" apart for servers only.
    if e.is_parse() && tally.received() >= MAX_HEADER {
        "response header too large".into()
    } else if e.is_parse_status() {
        // `extract_status_code` gives 0 for what is not three digits
        // between spaces, and 0 is never accepted.
        "HTTP status code 0 not accepted".into()
    } else if tally.received() == 0 {
        "no data received".into()
    } else if e.is_parse() || e.is_incomplete_message() {
        "no HTTP header received".into()
    } else {
        format!("read error: {e}")
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// keepalived's SSL_GET verifies no certificate (`SSL_VERIFY_NONE`).
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let cfg = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
                .with_no_client_auth();
            Arc::new(cfg)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run `f` on a fresh current-thread runtime (the tests are plain).
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// What hyper writes for keepalived's request.
    fn request(h: &HttpCheck, url: &Url, target: SocketAddr) -> String {
        let req = build_request(h, url, target).unwrap();
        block_on(async {
            let (_resp, mut theirs) = send(req).await;
            read_head(&mut theirs).await
        })
    }

    /// Send `req` on a client connection over an in-memory stream; the
    /// response to come and the server's end of the stream.
    async fn send(
        req: Request<Empty<Bytes>>,
    ) -> (
        tokio::task::JoinHandle<hyper::Result<Response<Incoming>>>,
        tokio::io::DuplexStream,
    ) {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let (mut sender, conn) = client_builder()
            .handshake::<_, Empty<Bytes>>(TokioIo::new(ours))
            .await
            .unwrap();
        tokio::spawn(conn);
        (tokio::spawn(sender.send_request(req)), theirs)
    }

    /// Read from the server's end up to the end of the request head.
    async fn read_head(theirs: &mut tokio::io::DuplexStream) -> String {
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tokio::io::AsyncReadExt::read(theirs, &mut buf)
                .await
                .unwrap();
            assert_ne!(n, 0);
            seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(seen).unwrap()
    }

    /// The status code and the announced body length hyper reads from a
    /// response head ending at `line` (0: no usable status line).
    fn parse_head(line: &[u8]) -> (u16, Option<u64>) {
        let mut head = line.to_vec();
        head.extend_from_slice(b"\r\n");
        block_on(async {
            let (resp, mut theirs) = send(Request::get("/").body(Empty::new()).unwrap()).await;
            // The request first (hyper fails an exchange whose request
            // cannot be written), then the head, then the end of the stream.
            read_head(&mut theirs).await;
            tokio::io::AsyncWriteExt::write_all(&mut theirs, &head)
                .await
                .unwrap();
            tokio::io::AsyncWriteExt::shutdown(&mut theirs)
                .await
                .unwrap();
            match resp.await.unwrap() {
                Ok(r) => {
                    let len = hyper::body::Body::size_hint(r.body()).exact();
                    (r.status().as_u16(), len)
                }
                Err(_) => (0, None),
            }
        })
    }

    fn extract_status_code(line: &[u8]) -> u16 {
        parse_head(line).0
    }

    fn content_length(head: &[u8]) -> Option<u64> {
        parse_head(head.strip_suffix(b"\r\n").unwrap_or(head)).1
    }

    #[test]
    fn status_code_like_keepalived() {
        assert_eq!(extract_status_code(b"HTTP/1.0 200 OK\r\n"), 200);
        assert_eq!(extract_status_code(b"HTTP/1.1 404 Not Found\r\n"), 404);
        assert_eq!(extract_status_code(b"HTTP/1.1 2000 x\r\n"), 0);
        assert_eq!(extract_status_code(b"HTTP/1.1\r\n"), 0);
        assert_eq!(extract_status_code(b"garbage"), 0);
    }

    #[test]
    fn request_template() {
        let h = HttpCheck {
            urls: vec![Url::new("/x")],
            ..HttpCheck::default()
        };
        let t: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(
            request(&h, &h.urls[0], t),
            "GET /x HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 127.0.0.1:8080\r\n\r\n"
        );
        let mut h11 = h.clone();
        h11.protocol = HttpProtocol::Http11;
        h11.virtualhost = Some("www.example".into());
        assert_eq!(
            request(&h11, &h11.urls[0], t),
            "GET /x HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: www.example\r\n\r\n"
        );
        let mut u = Url::new("/y");
        u.virtualhost = Some("url.example".into());
        assert!(request(&h11, &u, t).contains("Host: url.example\r\n"));
    }

    #[test]
    fn content_length_header() {
        assert_eq!(
            content_length(b"HTTP/1.0 200 OK\r\ncontent-LENGTH: 12\r\n\r\n"),
            Some(12)
        );
        assert_eq!(content_length(b"HTTP/1.0 200 OK\r\n\r\n"), None);
    }

    /// A server that answers `data` once a request was written, then fails
    /// the way a TLS peer that closes without `close_notify` does.
    struct NoCloseNotify {
        data: std::io::Cursor<Vec<u8>>,
        asked: bool,
        waker: Option<std::task::Waker>,
    }

    impl AsyncRead for NoCloseNotify {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if !self.asked {
                self.waker = Some(cx.waker().clone());
                return std::task::Poll::Pending;
            }
            let before = buf.filled().len();
            let r = std::pin::Pin::new(&mut self.data).poll_read(cx, buf);
            if buf.filled().len() == before {
                let e = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
                return std::task::Poll::Ready(Err(e));
            }
            r
        }
    }

    impl AsyncWrite for NoCloseNotify {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            b: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.asked = true;
            if let Some(w) = self.waker.take() {
                w.wake();
            }
            std::task::Poll::Ready(Ok(b.len()))
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// keepalived's verdict on a server that sends `response` and closes.
    fn verdict(response: &[u8], digest_of: Option<&str>) -> Result<(), String> {
        let mut url = Url::new("/");
        url.digest = digest_of.map(|b| hex(&Md5::digest(b.as_bytes())));
        let stream = NoCloseNotify {
            data: std::io::Cursor::new(response.to_vec()),
            asked: false,
            waker: None,
        };
        let req = Request::get("/").body(Empty::new()).unwrap();
        block_on(exchange(stream, req, &url, Duration::from_secs(5)))
    }

    #[test]
    fn the_end_of_the_stream_ends_the_response() {
        assert_eq!(verdict(b"", None), Err("no data received".into()));
        assert_eq!(
            verdict(b"HTTP/1.0 200 OK\r\n", None),
            Err("no HTTP header received".into())
        );
        assert_eq!(
            verdict(b"HTTP/1.1 2000 x\r\n\r\n", None),
            Err("HTTP status code 0 not accepted".into())
        );
        // No Content-Length: the body runs to the close.
        assert_eq!(
            verdict(b"HTTP/1.0 200 OK\r\n\r\nhello", Some("hello")),
            Ok(())
        );
        // A body cut short is what arrived.
        let short = b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nhello";
        assert_eq!(verdict(short, Some("hello")), Ok(()));
        // Past Content-Length nothing counts.
        let long = b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nhello";
        assert_eq!(verdict(long, Some("hell")), Ok(()));
        assert!(verdict(long, Some("hello"))
            .unwrap_err()
            .contains("MD5 digest mismatch"));
    }
}
