//! `HTTP_GET` and `SSL_GET` (keepalived's `check_http.c`, `check_ssl.c`,
//! `lib/html.c`).
//!
//! Per url: connect, (TLS handshake without certificate verification),
//! send keepalived's request, read the response until the server closes
//! (or `Content-Length` body bytes arrived). Each step and each read is
//! bounded by `connect_timeout`. The url succeeds when a header was
//! received, the status code is accepted and, if a digest is configured,
//! the MD5 of the body matches.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use md5::{Digest, Md5};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use crate::config::{CheckerConfig, HttpCheck, HttpProtocol, Url};
use crate::Outcome;

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

/// keepalived's `request_template`.
pub(crate) fn request(h: &HttpCheck, url: &Url, target: SocketAddr) -> String {
    let host = match url.virtualhost.as_ref().or(h.virtualhost.as_ref()) {
        Some(v) => v.clone(),
        None => match target {
            SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        },
    };
    let (minor, close) = match h.protocol {
        HttpProtocol::Http10 => (0, ""),
        HttpProtocol::Http10Close => (0, "Connection: close\r\n"),
        HttpProtocol::Http11 => (1, "Connection: close\r\n"),
    };
    format!(
        "GET {} HTTP/1.{minor}\r\nUser-Agent: KeepAliveClient\r\n{close}Host: {host}\r\n\r\n",
        url.path
    )
}

async fn fetch(
    cfg: &CheckerConfig,
    h: &HttpCheck,
    url: &Url,
    target: SocketAddr,
    limit: Duration,
) -> Result<(), String> {
    let tcp = super::connect(cfg, target, limit).await?;
    let req = request(h, url, target);
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
        exchange(tls, req.as_bytes(), url, limit).await
    } else {
        exchange(tcp, req.as_bytes(), url, limit).await
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    req: &[u8],
    url: &Url,
    limit: Duration,
) -> Result<(), String> {
    match timeout(limit, async {
        s.write_all(req).await?;
        s.flush().await
    })
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("cannot send request: {e}")),
        Err(_) => return Err(format!("send timeout ({limit:?})")),
    }
    let mut head: Vec<u8> = Vec::new();
    let mut header: Option<(u16, Option<usize>)> = None;
    let mut md5 = Md5::new();
    let mut body_len = 0usize;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if let Some((_, Some(cl))) = header {
            if body_len >= cl {
                break;
            }
        }
        let n = match timeout(limit, s.read(&mut buf)).await {
            Ok(Ok(n)) => n,
            // A TLS peer that closes without close_notify: keepalived
            // treats the end of the stream as the end of the response.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Ok(Err(e)) => return Err(format!("read error: {e}")),
            Err(_) => return Err(format!("read timeout ({limit:?})")),
        };
        if n == 0 {
            break;
        }
        let mut data = &buf[..n];
        if header.is_none() {
            head.extend_from_slice(data);
            let Some(end) = find_header_end(&head) else {
                if head.len() > MAX_HEADER {
                    return Err("response header too large".into());
                }
                continue;
            };
            let status = extract_status_code(&head[..end]);
            let cl = content_length(&head[..end]);
            header = Some((status, cl));
            let rest = head.split_off(end);
            data = &[];
            feed(&mut md5, &mut body_len, cl, &rest);
        }
        let cl = header.and_then(|h| h.1);
        feed(&mut md5, &mut body_len, cl, data);
    }
    let Some((status, _)) = header else {
        return Err(if head.is_empty() {
            "no data received".into()
        } else {
            "no HTTP header received".into()
        });
    };
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

fn feed(md5: &mut Md5, body_len: &mut usize, cl: Option<usize>, data: &[u8]) {
    let take = match cl {
        Some(cl) => data.len().min(cl.saturating_sub(*body_len)),
        None => data.len(),
    };
    md5.update(&data[..take]);
    *body_len += take;
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `extract_html`: offset just past the first `\r\n\r\n`.
fn find_header_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// `extract_status_code`: the three digits after the first space of the
/// status line, followed by a space; anything else is 0 (never accepted).
pub(crate) fn extract_status_code(head: &[u8]) -> u16 {
    let Some(sp) = head.iter().position(|&c| c == b' ' || c == b'\r') else {
        return 0;
    };
    if head[sp] != b' ' {
        return 0;
    }
    let code = &head[sp + 1..];
    if code.len() < 4 || code[3] != b' ' || !code[..3].iter().all(u8::is_ascii_digit) {
        return 0;
    }
    code[..3]
        .iter()
        .fold(0u16, |a, &d| a * 10 + u16::from(d - b'0'))
}

fn content_length(head: &[u8]) -> Option<usize> {
    let text = String::from_utf8_lossy(head);
    text.split("\r\n").skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        if k.trim().eq_ignore_ascii_case("content-length") {
            v.trim().parse().ok()
        } else {
            None
        }
    })
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
}
