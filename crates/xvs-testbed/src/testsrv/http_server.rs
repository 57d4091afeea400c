//! The HTTP server: one thread per connection, keep-alive, slow bodies.

use std::io::{self, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::http::{build_response, parse_request_head, read_head, slow_byte, slow_params, Request};
use super::{serve_all, IDLE_TIMEOUT, MAX_CONNS};

pub(super) fn http_servers(listen: &[String], name: &str) -> io::Result<()> {
    let name: Arc<str> = Arc::from(name);
    serve_all(
        listen,
        |l| {
            let s = TcpListener::bind(l)?;
            let url = format!("http://{}", s.local_addr()?);
            Ok((s, url))
        },
        move |s| http_serve(s, &name),
    )
}

pub(super) fn http_serve(listener: TcpListener, name: &str) -> io::Result<()> {
    let name: Arc<str> = Arc::from(name);
    let live = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                eprintln!("accept: {e}");
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if live.load(Ordering::Relaxed) >= MAX_CONNS {
            continue; // dropped: closed at once
        }
        live.fetch_add(1, Ordering::Relaxed);
        let (name, live2) = (name.clone(), live.clone());
        let spawned = thread::Builder::new().spawn(move || {
            let _ = serve_conn(conn, &name);
            live2.fetch_sub(1, Ordering::Relaxed);
        });
        if spawned.is_err() {
            live.fetch_sub(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

pub(super) fn serve_conn(conn: TcpStream, name: &str) -> io::Result<()> {
    conn.set_read_timeout(Some(IDLE_TIMEOUT))?;
    conn.set_write_timeout(Some(IDLE_TIMEOUT))?;
    let _ = conn.set_nodelay(true);
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    loop {
        let Some(head) = read_head(&mut r)? else {
            return Ok(());
        };
        let req = match parse_request_head(&head) {
            Ok(req) => req,
            Err(e) => {
                let msg = format!("{e}\n");
                write!(
                    w,
                    "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
                    msg.len()
                )?;
                return Ok(());
            }
        };
        match req.content_length() {
            Ok(n) => {
                io::copy(&mut r.by_ref().take(n as u64), &mut io::sink())?;
            }
            Err(_) => return Ok(()),
        }
        let (resp, keep) = build_response(name, &req);
        if let (Some((n, ms)), "GET") = (slow_params(&req.path), req.method.as_str()) {
            write_slow(&mut w, name, &req, n, ms)?;
            return Ok(());
        }
        w.write_all(&resp)?;
        if !keep {
            return Ok(());
        }
    }
}

/// A `/slow/N/MS` response: the name line and N pattern bytes, written in
/// 1 KiB pieces spread evenly over MS milliseconds (a long transfer);
/// the connection closes after it.
pub(super) fn write_slow(
    w: &mut TcpStream,
    name: &str,
    req: &Request,
    n: usize,
    ms: u64,
) -> io::Result<()> {
    let mut body = format!("{name}\n").into_bytes();
    body.extend((0..n).map(slow_byte));
    write!(
        w,
        "HTTP/1.{} 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        req.minor,
        body.len()
    )?;
    let pieces = body.chunks(1024).count().max(1) as u64;
    let start = std::time::Instant::now();
    for (k, piece) in body.chunks(1024).enumerate() {
        let due = Duration::from_millis(ms * k as u64 / pieces);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            thread::sleep(wait);
        }
        w.write_all(piece)?;
    }
    Ok(())
}
