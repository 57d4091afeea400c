//! The listener's routes: metrics, the page, its JSON, and the write
//! action's checks (no token, wrong token, bad body, good token).

use super::*;
use crate::daemon::Daemon;
use crate::testing::{list, Mem, LIMITS};
use std::net::IpAddr;
use std::net::Ipv4Addr;
use xvs_core::api::{Request as ApiRequest, Response as ApiResponse};
use xvs_core::model::{Dest, FwdMethod, Protocol, Service, ServiceKey};

const SECRET: &str = "0123456789abcdef-secret";

fn state(token: Option<&str>) -> (State, Option<Inbox>) {
    let published = Snapshot::default();
    published.set_metrics("xvs_up 1\n".into());
    published.set_status("{\"services\":[]}".into());
    let (outbox, inbox) = match token {
        Some(_) => {
            let (o, i) = actions::channel().unwrap();
            (Some(o), Some(i))
        }
        None => (None, None),
    };
    let st = State {
        published,
        token: token.and_then(Token::new),
        outbox,
    };
    (st, inbox)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

async fn body_text(r: Response<Full<Bytes>>) -> String {
    let b = r.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&b).into_owned()
}

fn ask(st: &State, method: Method, path: &str) -> Response<Full<Bytes>> {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .body(Full::new(Bytes::new()))
        .unwrap();
    rt().block_on(handle(req, st))
}

/// A POST of `body`, with the daemon loop's part played by `daemon`
/// (when given) while the request waits for it.
fn post(
    st: &State,
    auth: Option<&str>,
    body: &str,
    daemon: Option<&mut Daemon<Mem>>,
) -> (StatusCode, String) {
    let mut b = Request::builder().method(Method::POST).uri(WEIGHT_PATH);
    if let Some(a) = auth {
        b = b.header(AUTHORIZATION, a);
    }
    let req = b.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    rt().block_on(async move {
        let fut = handle(req, st);
        tokio::pin!(fut);
        let resp = match daemon {
            None => fut.await,
            Some(d) => loop {
                tokio::select! {
                    r = &mut fut => break r,
                    _ = tokio::time::sleep(Duration::from_millis(1)) => { d.web_actions(); }
                }
            },
        };
        (resp.status(), body_text(resp).await)
    })
}

fn key() -> ServiceKey {
    ServiceKey::new(Protocol::Tcp, Ipv4Addr::new(198, 51, 100, 10), 80)
}

/// A daemon with TCP 198.51.100.10:80 and a NAT real server
/// 203.0.113.11:80 of weight 3, publishing to `st` and taking its actions
/// from `inbox`.
fn daemon(st: &State, inbox: Option<Inbox>) -> Daemon<Mem> {
    let mut d = Daemon::new(Mem::default(), LIMITS, None).unwrap();
    let svc = Service::new(key(), "wrr");
    assert_eq!(
        d.handle(ApiRequest::AddService { service: svc }),
        ApiResponse::Ok
    );
    let mut dest = Dest::new(Ipv4Addr::new(203, 0, 113, 11), 80);
    dest.fwd = FwdMethod::Masq;
    dest.weight = 3;
    assert_eq!(
        d.handle(ApiRequest::AddDest { key: key(), dest }),
        ApiResponse::Ok
    );
    d.set_web(st.published.clone(), inbox);
    d
}

fn weights(d: &mut Daemon<Mem>) -> Vec<(u32, FwdMethod)> {
    list(d).services[0]
        .dests
        .iter()
        .map(|e| (e.dest.weight, e.dest.fwd))
        .collect()
}

const BODY: &str = r#"{"service": "TCP 198.51.100.10:80", "dest": "203.0.113.11:80", "weight": 0}"#;

#[test]
fn metrics_is_the_snapshot_in_prometheus_text() {
    let (st, _) = state(None);
    let r = ask(&st, Method::GET, "/metrics?x=1");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[CONTENT_TYPE], prometheus_text::CONTENT_TYPE);
    assert_eq!(rt().block_on(body_text(r)), "xvs_up 1\n");
}

#[test]
fn the_page_and_its_json_are_served() {
    let (st, _) = state(None);
    for path in ["/", "/status"] {
        let r = ask(&st, Method::GET, path);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(r.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("default-src 'none'"));
        let page = rt().block_on(body_text(r));
        assert!(page.contains("/status.json"));
    }
    let r = ask(&st, Method::GET, "/status.json");
    assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(r.headers()[CACHE_CONTROL], "no-store");
    assert_eq!(rt().block_on(body_text(r)), "{\"services\":[]}");
}

#[test]
fn the_page_is_self_contained_and_never_parses_model_text_as_html() {
    // The SVG namespace is a name, never fetched.
    let page = PAGE.replace("\"http://www.w3.org/2000/svg\"", "");
    for external in ["http://", "https://", "src=", "href=", "@import", "url("] {
        assert!(!page.contains(external), "the page refers to {external}");
    }
    assert!(
        !PAGE.contains("innerHTML"),
        "model text goes in as text only"
    );
    assert!(!PAGE.contains("insertAdjacentHTML"));
}

#[test]
fn other_paths_and_methods_are_refused() {
    let (st, _) = state(None);
    assert_eq!(
        ask(&st, Method::GET, "/nothing").status(),
        StatusCode::NOT_FOUND
    );
    let r = ask(&st, Method::POST, "/metrics");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()[ALLOW], "GET, HEAD");
    let r = ask(&st, Method::GET, WEIGHT_PATH);
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()[ALLOW], "POST");
}

#[test]
fn without_a_token_write_actions_are_refused_and_nothing_changes() {
    let (st, inbox) = state(None);
    assert!(inbox.is_none());
    let mut d = daemon(&st, None);
    let (s, body) = post(&st, Some(&format!("Bearer {SECRET}")), BODY, None);
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body.contains("--status-token-file"), "{body}");
    assert_eq!(d.web_actions(), 0);
    assert_eq!(weights(&mut d), [(3, FwdMethod::Masq)]);
    assert!(!d.status_view().write_actions);
}

#[test]
fn a_missing_or_wrong_token_is_refused_before_the_body_is_read() {
    let (st, inbox) = state(Some(SECRET));
    let mut d = daemon(&st, inbox);
    let (s, body) = post(&st, None, BODY, Some(&mut d));
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(body.contains("missing token"), "{body}");
    let (s, _) = post(&st, Some("Bearer not-the-token-at-all"), BODY, Some(&mut d));
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = post(&st, Some(&format!("Basic {SECRET}")), BODY, Some(&mut d));
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(weights(&mut d), [(3, FwdMethod::Masq)]);
}

#[test]
fn a_bad_body_is_refused_with_what_is_wrong() {
    let (st, inbox) = state(Some(SECRET));
    let mut d = daemon(&st, inbox);
    let auth = format!("Bearer {SECRET}");
    let (s, body) = post(&st, Some(&auth), "{\"weight\": 1}", Some(&mut d));
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("missing field"), "{body}");
    let big = format!("{{\"service\": \"{}\"}}", "x".repeat(MAX_BODY));
    let (s, body) = post(&st, Some(&auth), &big, Some(&mut d));
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("at most"), "{body}");
    // A real server the service does not have.
    let other = BODY.replace("203.0.113.11", "203.0.113.99");
    let (s, body) = post(&st, Some(&auth), &other, Some(&mut d));
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(body.contains("No such destination"), "{body}");
    assert_eq!(weights(&mut d), [(3, FwdMethod::Masq)]);
}

#[test]
fn the_good_token_drains_and_sets_weights_as_edit_dest_does() {
    let (st, inbox) = state(Some(SECRET));
    let mut d = daemon(&st, inbox);
    assert!(d.status_view().write_actions);
    let auth = format!("Bearer {SECRET}");
    let (s, body) = post(&st, Some(&auth), BODY, Some(&mut d));
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body.contains("set to 0"), "{body}");
    // Only the weight changed: the forwarding method is kept.
    assert_eq!(weights(&mut d), [(0, FwdMethod::Masq)]);
    let (s, _) = post(
        &st,
        Some(&auth),
        &BODY.replace("\"weight\": 0", "\"weight\": 7"),
        Some(&mut d),
    );
    assert_eq!(s, StatusCode::OK);
    assert_eq!(weights(&mut d), [(7, FwdMethod::Masq)]);
    // The published JSON follows at once.
    let r = ask(&st, Method::GET, "/status.json");
    let json: serde_json::Value = serde_json::from_str(&rt().block_on(body_text(r))).unwrap();
    assert_eq!(json["services"][0]["real_servers"][0]["weight"], 7);
    assert_eq!(json["write_actions"], true);
}

#[test]
fn a_get_changes_nothing() {
    let (st, inbox) = state(Some(SECRET));
    let mut d = daemon(&st, inbox);
    for path in ["/", "/status", "/status.json", "/metrics", WEIGHT_PATH] {
        ask(&st, Method::GET, path);
    }
    assert_eq!(d.web_actions(), 0);
    assert_eq!(weights(&mut d), [(3, FwdMethod::Masq)]);
}

#[test]
fn the_status_json_is_rendered_only_while_someone_watches() {
    let (st, _) = state(None);
    let mut d = daemon(&st, None);
    let before = st.published.status();
    assert!(
        before.contains("203.0.113.11:80"),
        "set_web renders at once"
    );
    let mut dest = Dest::new(Ipv4Addr::new(203, 0, 113, 12), 80);
    dest.fwd = FwdMethod::Masq;
    let r = d.handle(ApiRequest::AddDest { key: key(), dest });
    assert_eq!(r, ApiResponse::Ok);
    // Nobody asked: the once-a-second refresh leaves it (metrics go on).
    d.every_second();
    assert_eq!(st.published.status(), before);
    assert!(st.published.metrics().contains("203.0.113.12"));
    // A request on a stale text waits for the daemon's next refresh.
    st.published.status_at_ms.store(1, Ordering::SeqCst);
    let req = Request::builder()
        .uri("/status.json")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let text = rt().block_on(async {
        let fut = handle(req, &st);
        tokio::pin!(fut);
        let resp = loop {
            tokio::select! {
                r = &mut fut => break r,
                _ = tokio::time::sleep(Duration::from_millis(20)) => d.every_second(),
            }
        };
        body_text(resp).await
    });
    assert!(text.contains("203.0.113.12:80"), "{text}");
    // Watched now: every refresh renders it.
    let r = d.handle(ApiRequest::DelDest {
        key: key(),
        addr: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 12)),
        port: 80,
    });
    assert_eq!(r, ApiResponse::Ok);
    d.every_second();
    assert!(!st.published.status().contains("203.0.113.12:80"));
}
