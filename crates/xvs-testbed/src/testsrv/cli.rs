//! The command line: subcommands, URLs, numbers.

use std::net::{IpAddr, SocketAddr};

use super::MAX_COUNT;

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    Http {
        listen: Vec<String>,
        name: String,
    },
    UdpEcho {
        listen: Vec<String>,
        name: String,
    },
    /// Binds and never reads: datagrams fill the socket's buffer and are
    /// then dropped there (an overloaded UDP service), without the ICMP
    /// port-unreachable a closed port costs the host per datagram.
    UdpSink {
        listen: Vec<String>,
        name: String,
    },
    /// One-to-one style SCTP associations, each message answered with
    /// the name.
    Sctp {
        listen: Vec<String>,
        name: String,
    },
    Get {
        url: Url,
        count: u64,
        timeout_ms: u64,
        keepalive: bool,
        /// Local addresses (port 0: any) to send from, one connection
        /// after the other in turn (empty: the kernel's choice).
        sources: Vec<SocketAddr>,
    },
    Udp {
        addr: String,
        count: u64,
        timeout_ms: u64,
        payload: String,
        new_conn: bool,
        /// As for `Get`.
        sources: Vec<SocketAddr>,
    },
    /// `count` requests to an SCTP server, a new association each.
    SctpGet {
        addr: String,
        count: u64,
        timeout_ms: u64,
        sources: Vec<SocketAddr>,
    },
}

/// `http://host[:port][/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Url {
    /// `host:port`, with IPv6 literals bracketed.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Parse an `http://` URL (no userinfo, no https).
pub fn parse_url(s: &str) -> Result<Url, String> {
    let rest = s
        .strip_prefix("http://")
        .ok_or_else(|| format!("unsupported URL {s:?}: only http:// is supported"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if hostport.is_empty() {
        return Err(format!("URL {s:?} has no host"));
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let end = v6
            .find(']')
            .ok_or_else(|| format!("URL {s:?}: unterminated IPv6 literal"))?;
        let host = &v6[..end];
        let after = &v6[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => parse_port(p, s)?,
            None if after.is_empty() => 80,
            None => return Err(format!("URL {s:?}: junk after IPv6 literal")),
        };
        (host.to_string(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), parse_port(p, s)?),
            None => (hostport.to_string(), 80),
        }
    };
    if host.is_empty() {
        return Err(format!("URL {s:?} has no host"));
    }
    Ok(Url {
        host,
        port,
        path: path.to_string(),
    })
}

pub(super) fn parse_port(p: &str, url: &str) -> Result<u16, String> {
    p.parse::<u16>()
        .map_err(|_| format!("URL {url:?}: bad port {p:?}"))
}

pub(super) fn parse_num(flag: &str, v: &str, max: u64) -> Result<u64, String> {
    let n: u64 = v
        .parse()
        .map_err(|_| format!("{flag}: expected a number, got {v:?}"))?;
    if n == 0 || n > max {
        return Err(format!("{flag}: {n} out of range 1..={max}"));
    }
    Ok(n)
}

/// Parse the arguments after the program name.
pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<Cmd, String> {
    let args: Vec<&str> = args.iter().map(|s| s.as_ref()).collect();
    let (sub, rest) = args.split_first().ok_or("missing subcommand")?;
    let mut listen: Vec<String> = Vec::new();
    let mut name = None;
    let mut count = 1u64;
    let mut timeout_ms = 2000u64;
    let mut keepalive: Option<bool> = None;
    let mut payload: Option<String> = None;
    let mut sources: Vec<SocketAddr> = Vec::new();
    let mut positional: Vec<&str> = Vec::new();
    let mut it = rest.iter();
    while let Some(&a) = it.next() {
        let mut value = |flag: &str| -> Result<&str, String> {
            it.next()
                .copied()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match a {
            "--listen" => listen.push(value(a)?.to_string()),
            "--name" => name = Some(value(a)?.to_string()),
            "--count" | "-n" => count = parse_num(a, value(a)?, MAX_COUNT)?,
            "--timeout-ms" => timeout_ms = parse_num(a, value(a)?, 600_000)?,
            "--payload" => payload = Some(value(a)?.to_string()),
            "--source" => {
                for addr in value(a)?.split(',') {
                    sources.push(parse_source(addr)?);
                }
            }
            "--new-conn" => {
                if keepalive == Some(true) {
                    return Err("--new-conn and --keepalive exclude each other".into());
                }
                keepalive = Some(false)
            }
            "--keepalive" => {
                if keepalive == Some(false) {
                    return Err("--new-conn and --keepalive exclude each other".into());
                }
                keepalive = Some(true)
            }
            f if f.starts_with("--") => return Err(format!("unknown option {f}")),
            p => positional.push(p),
        }
    }
    let need =
        |v: Option<String>, flag: &str| v.ok_or_else(|| format!("{sub}: {flag} is required"));
    let no_positional = |positional: &[&str]| {
        if positional.is_empty() {
            Ok(())
        } else {
            Err(format!("{sub}: unexpected argument {:?}", positional[0]))
        }
    };
    let one_positional = |positional: &[&str], what: &str| match positional {
        [p] => Ok(p.to_string()),
        [] => Err(format!("{sub}: {what} is required")),
        [_, x, ..] => Err(format!("{sub}: unexpected argument {x:?}")),
    };
    match *sub {
        "http" | "udp-echo" | "udp-sink" | "sctp" => {
            no_positional(&positional)?;
            if listen.is_empty() {
                return Err(format!("{sub}: --listen is required"));
            }
            for l in &listen {
                l.parse::<SocketAddr>()
                    .map_err(|_| format!("--listen: expected ADDR:PORT, got {l:?}"))?;
            }
            let name = need(name, "--name")?;
            Ok(match *sub {
                "http" => Cmd::Http { listen, name },
                "udp-echo" => Cmd::UdpEcho { listen, name },
                "sctp" => Cmd::Sctp { listen, name },
                _ => Cmd::UdpSink { listen, name },
            })
        }
        "get" => {
            let url = parse_url(&one_positional(&positional, "URL")?)?;
            Ok(Cmd::Get {
                url,
                count,
                timeout_ms,
                keepalive: keepalive.unwrap_or(false),
                sources,
            })
        }
        "udp" => {
            let addr = one_positional(&positional, "ADDR:PORT")?;
            Ok(Cmd::Udp {
                addr,
                count,
                timeout_ms,
                payload: payload.unwrap_or_else(|| "ping".into()),
                new_conn: keepalive == Some(false),
                sources,
            })
        }
        "sctp-get" => {
            let addr = one_positional(&positional, "ADDR:PORT")?;
            // Every association is new and says the same: refuse options
            // a caller would expect to change that.
            if keepalive.is_some() || payload.is_some() {
                return Err(format!(
                    "{sub}: only --count, --timeout-ms and --source apply"
                ));
            }
            Ok(Cmd::SctpGet {
                addr,
                count,
                timeout_ms,
                sources,
            })
        }
        other => Err(format!("unknown subcommand {other:?}")),
    }
}

/// A `--source` entry: `ADDR` (any port) or `ADDR:PORT`, `[V6]:PORT`.
pub(super) fn parse_source(s: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 0));
    }
    s.parse()
        .map_err(|_| format!("--source: {s:?} is not an address or address:port"))
}
