//! xvsd's HTTP listener (`--metrics-listen ADDR:PORT`): `GET /metrics`
//! (Prometheus), the status page (`GET /`, `/status`) and its data
//! (`GET /status.json`), all answered from snapshots the daemon loop
//! refreshes every second, so a request never touches the table; and,
//! only with `--status-token-file`, the page's write action
//! (`POST /api/dest/weight`, [`actions`]), which the daemon loop applies.
//! HTTP is hyper's (HTTP/1.1 with keep-alive, as Prometheus scrapes), on
//! a current-thread runtime in a thread of its own: the listener never
//! shares a thread with the control socket or the health checkers.

pub mod actions;
pub mod status;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{
    HeaderName, HeaderValue, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_SECURITY_POLICY,
    CONTENT_TYPE, WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::prometheus_text;
use tokio::sync::Semaphore;
use xvs_core::api::{ApiError, ErrorKind};

use actions::{authorize, parse_body, Action, Denied, Inbox, Outbox, Token};

/// Clients served at once; more wait in the kernel's accept queue.
const MAX_CLIENTS: usize = 64;
/// A client must send its request head within this time.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// No connection lives longer, so idle keep-alive clients cannot pile up.
const CONN_LIFETIME: Duration = Duration::from_secs(120);
/// A write action's body is a few dozen bytes; more is refused unread.
const MAX_BODY: usize = 4096;
/// How long a write action waits for the daemon loop's answer.
const ACTION_TIMEOUT: Duration = Duration::from_secs(5);

/// The status page: HTML, CSS and script in one file, nothing fetched
/// from elsewhere.
pub const PAGE: &str = include_str!("web/status.html");

/// The page may run its own inline script and style and talk to this
/// listener only.
const PAGE_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The status JSON is rendered while someone asked for it this recently
/// (the page asks every 2 s); an xvsd nobody watches does not pay for it.
pub const STATUS_IDLE: Duration = Duration::from_secs(10);
/// A status snapshot older than this is refreshed before it is answered
/// (the first request after an idle spell).
const STATUS_STALE: Duration = Duration::from_millis(2500);
/// How long such a request waits for the refresh.
const STATUS_WAIT: Duration = Duration::from_millis(1500);

/// Now, Unix milliseconds.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The texts the daemon loop keeps up to date.
#[derive(Debug, Default)]
pub struct Published {
    metrics: Mutex<String>,
    status: Mutex<String>,
    /// When `/status.json` was last asked for, Unix ms (0: never).
    status_asked_ms: AtomicU64,
    /// When the status text was last replaced, Unix ms.
    status_at_ms: AtomicU64,
}

impl Published {
    /// Replaces the `/metrics` text.
    pub fn set_metrics(&self, text: String) {
        *self.metrics.lock().unwrap_or_else(|e| e.into_inner()) = text;
    }

    /// Replaces the `/status.json` text.
    pub fn set_status(&self, text: String) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = text;
        self.status_at_ms.store(unix_ms(), Ordering::SeqCst);
    }

    /// Whether someone asked for `/status.json` within [`STATUS_IDLE`]
    /// (or the text was never rendered): the daemon renders it only then.
    pub fn status_wanted(&self) -> bool {
        let asked = self.status_asked_ms.load(Ordering::SeqCst);
        self.status_at_ms.load(Ordering::SeqCst) == 0
            || unix_ms().saturating_sub(asked) <= STATUS_IDLE.as_millis() as u64
    }

    /// Notes a request for `/status.json`; when the text is stale (no one
    /// asked for a while, so the daemon stopped rendering it), waits a
    /// little for the daemon's next refresh.
    async fn fresh_status(&self) {
        self.status_asked_ms.store(unix_ms(), Ordering::SeqCst);
        let stale = || {
            unix_ms().saturating_sub(self.status_at_ms.load(Ordering::SeqCst))
                > STATUS_STALE.as_millis() as u64
        };
        let end = tokio::time::Instant::now() + STATUS_WAIT;
        while stale() && tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn metrics(&self) -> String {
        self.metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn status(&self) -> String {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// What the daemon publishes to.
pub type Snapshot = Arc<Published>;

/// What every request is answered from.
#[derive(Debug)]
struct State {
    published: Snapshot,
    /// Write actions are on when there is a token.
    token: Option<Token>,
    /// Where accepted write actions go (present with the token).
    outbox: Option<Outbox>,
}

/// Binds `addr` (so a bad address fails the daemon's start) and serves it
/// from a background thread; returns the snapshot to keep up to date
/// and, when `token` enables write actions, the inbox the daemon loop
/// applies them from.
pub fn serve(addr: SocketAddr, token: Option<Token>) -> std::io::Result<(Snapshot, Option<Inbox>)> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let (outbox, inbox) = match token {
        Some(_) => {
            let (o, i) = actions::channel()?;
            (Some(o), Some(i))
        }
        None => (None, None),
    };
    let published = Snapshot::default();
    let state = Arc::new(State {
        published: published.clone(),
        token,
        outbox,
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name("xvsd-web".into())
        .spawn(move || {
            rt.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => accept_loop(l, state).await,
                    Err(e) => log::error!("metrics listener: {e}"),
                }
            })
        })?;
    Ok((published, inbox))
}

async fn accept_loop(listener: tokio::net::TcpListener, state: Arc<State>) {
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
        let state = state.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(req, &state).await) }
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

/// What one request gets.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: StatusCode,
    ctype: &'static str,
    body: String,
    /// Extra headers.
    headers: Vec<(HeaderName, &'static str)>,
}

impl Answer {
    fn new(status: StatusCode, ctype: &'static str, body: String) -> Answer {
        Answer {
            status,
            ctype,
            body,
            headers: Vec::new(),
        }
    }

    fn text(status: StatusCode, body: &str) -> Answer {
        Answer::new(status, "text/plain; charset=utf-8", format!("{body}\n"))
    }

    fn json(status: StatusCode, v: serde_json::Value) -> Answer {
        Answer::new(status, "application/json", format!("{v}\n"))
    }

    fn header(mut self, name: HeaderName, value: &'static str) -> Answer {
        self.headers.push((name, value));
        self
    }
}

/// The path of the write action.
const WEIGHT_PATH: &str = "/api/dest/weight";

/// Answers what is answered from the snapshots: the method and path
/// decide, the body is never read.
fn answer(method: &Method, path: &str, p: &Published) -> Answer {
    let get = matches!(*method, Method::GET | Method::HEAD);
    if !get {
        return Answer::text(StatusCode::METHOD_NOT_ALLOWED, "GET only").header(ALLOW, "GET, HEAD");
    }
    match path {
        "/metrics" => Answer::new(StatusCode::OK, prometheus_text::CONTENT_TYPE, p.metrics()),
        "/" | "/status" => Answer::new(StatusCode::OK, "text/html; charset=utf-8", PAGE.into())
            .header(CONTENT_SECURITY_POLICY, PAGE_CSP)
            .header(CACHE_CONTROL, "no-store"),
        "/status.json" => Answer::new(StatusCode::OK, "application/json", p.status())
            .header(CACHE_CONTROL, "no-store"),
        _ => Answer::text(
            StatusCode::NOT_FOUND,
            "not found: try / (the status page), /status.json or /metrics",
        ),
    }
}

/// The HTTP status for an error the daemon answered a change with.
fn api_status(e: &ApiError) -> StatusCode {
    match e.kind {
        ErrorKind::NoSuchService | ErrorKind::ServiceNotDefined | ErrorKind::NoSuchDest => {
            StatusCode::NOT_FOUND
        }
        ErrorKind::Invalid | ErrorKind::OutOfRange => StatusCode::BAD_REQUEST,
        ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::CONFLICT,
    }
}

fn error(status: StatusCode, message: &str) -> Answer {
    Answer::json(status, serde_json::json!({ "error": message }))
}

/// `POST /api/dest/weight`: the token first (the body of an
/// unauthorised client is never read), then the body, then the daemon.
async fn set_weight<B>(req: Request<B>, st: &State) -> Answer
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let auth = req.headers().get(AUTHORIZATION).map(HeaderValue::as_bytes);
    if let Err(d) = authorize(st.token.as_ref(), auth) {
        return match d {
            Denied::Missing => error(StatusCode::UNAUTHORIZED, d.message())
                .header(WWW_AUTHENTICATE, "Bearer realm=\"xvsd\""),
            Denied::Disabled | Denied::Wrong => error(StatusCode::FORBIDDEN, d.message()),
        };
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the body (at most {MAX_BODY} bytes): {e}"),
            )
        }
    };
    let change = match parse_body(&body) {
        Ok(c) => c,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let sent = st
        .outbox
        .as_ref()
        .is_some_and(|o| o.send(Action { change, reply: tx }));
    let unavailable = || error(StatusCode::SERVICE_UNAVAILABLE, "xvsd did not answer");
    if !sent {
        return unavailable();
    }
    match tokio::time::timeout(ACTION_TIMEOUT, rx).await {
        Ok(Ok(Ok(()))) => Answer::json(
            StatusCode::OK,
            serde_json::json!({
                "applied": format!(
                    "weight of {}:{} in {} set to {}",
                    change.addr,
                    change.port,
                    status::service_id(&change.service),
                    change.weight
                )
            }),
        ),
        Ok(Ok(Err(e))) => error(api_status(&e), &e.message),
        _ => unavailable(),
    }
}

async fn handle<B>(req: Request<B>, st: &State) -> Response<Full<Bytes>>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let a = if req.uri().path() == WEIGHT_PATH {
        if req.method() == Method::POST {
            set_weight(req, st).await
        } else {
            Answer::text(StatusCode::METHOD_NOT_ALLOWED, "POST only").header(ALLOW, "POST")
        }
    } else {
        if req.uri().path() == "/status.json" && matches!(*req.method(), Method::GET | Method::HEAD)
        {
            st.published.fresh_status().await;
        }
        answer(req.method(), req.uri().path(), &st.published)
    };
    let mut resp = Response::new(Full::new(Bytes::from(a.body)));
    *resp.status_mut() = a.status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(a.ctype));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    for (name, value) in a.headers {
        h.insert(name, HeaderValue::from_static(value));
    }
    resp
}

#[cfg(test)]
#[path = "web/tests.rs"]
mod tests;
