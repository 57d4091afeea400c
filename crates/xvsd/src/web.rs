//! xvsd's HTTP listener (`--metrics-listen ADDR:PORT`): `GET /metrics`
//! answers the snapshot the daemon loop refreshes every second, so a scrape
//! never touches the table. HTTP is hyper's (HTTP/1.1 with keep-alive, as
//! Prometheus scrapes), on a current-thread runtime in a thread of its own:
//! the listener never shares a thread with the control socket or the
//! health checkers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::prometheus_text;
use tokio::sync::Semaphore;

/// Clients served at once; more wait in the kernel's accept queue.
const MAX_CLIENTS: usize = 64;
/// A client must send its request head within this time.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// No connection lives longer, so idle keep-alive clients cannot pile up.
const CONN_LIFETIME: Duration = Duration::from_secs(120);

/// The text the daemon loop keeps up to date.
pub type Snapshot = Arc<Mutex<String>>;

/// Binds `addr` (so a bad address fails the daemon's start) and serves it
/// from a background thread; returns the snapshot to keep up to date.
pub fn serve(addr: SocketAddr) -> std::io::Result<Snapshot> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let snapshot = Snapshot::default();
    let snap = snapshot.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name("xvsd-web".into())
        .spawn(move || {
            rt.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => accept_loop(l, snap).await,
                    Err(e) => log::error!("metrics listener: {e}"),
                }
            })
        })?;
    Ok(snapshot)
}

async fn accept_loop(listener: tokio::net::TcpListener, snap: Snapshot) {
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and the like: say so and give the table a moment.
                log::warn!("metrics accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let snap = snap.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let snap = snap.clone();
                async move { Ok::<_, Infallible>(route(&req, &snap)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            if let Ok(Err(e)) = tokio::time::timeout(CONN_LIFETIME, conn).await {
                log::debug!("metrics client: {e}");
            }
            drop(permit);
        });
    }
}

/// What one request gets: the method and path decide, the body is never
/// read.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: StatusCode,
    ctype: &'static str,
    body: String,
}

fn answer(method: &Method, path: &str, snap: &Mutex<String>) -> Answer {
    let get = matches!(*method, Method::GET | Method::HEAD);
    let (status, ctype, body) = match (get, path) {
        (true, "/metrics") => (
            StatusCode::OK,
            prometheus_text::CONTENT_TYPE,
            snap.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        ),
        (true, _) => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics\n".to_owned(),
        ),
        (false, _) => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".to_owned(),
        ),
    };
    Answer {
        status,
        ctype,
        body,
    }
}

fn route<B>(req: &Request<B>, snap: &Mutex<String>) -> Response<Full<Bytes>> {
    let a = answer(req.method(), req.uri().path(), snap);
    let mut resp = Response::new(Full::new(Bytes::from(a.body)));
    *resp.status_mut() = a.status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(a.ctype));
    if a.status == StatusCode::METHOD_NOT_ALLOWED {
        h.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(method: Method, path: &str) -> Response<Full<Bytes>> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap();
        route(&req, &Mutex::new("xvs_up 1\n".to_owned()))
    }

    #[test]
    fn metrics_is_the_snapshot_in_prometheus_text() {
        let snap = Mutex::new("xvs_up 1\n".to_owned());
        let a = answer(&Method::GET, "/metrics", &snap);
        assert_eq!(
            a,
            Answer {
                status: StatusCode::OK,
                ctype: prometheus_text::CONTENT_TYPE,
                body: "xvs_up 1\n".into()
            }
        );
        let r = ask(Method::GET, "/metrics?x=1");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[CONTENT_TYPE], prometheus_text::CONTENT_TYPE);
    }

    #[test]
    fn other_paths_and_methods_are_refused() {
        assert_eq!(ask(Method::GET, "/").status(), StatusCode::NOT_FOUND);
        let r = ask(Method::POST, "/metrics");
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[ALLOW], "GET, HEAD");
    }
}
