//! Host and service names, from `/etc/hosts` and `/etc/services` only.
//!
//! ipvsadm resolves through the C library, which may ask DNS; a listing must
//! never hang on a resolver, so xvs reads the two files and nothing else.
//! Everything that resolves takes a `&dyn Resolver`, so tests inject names.

use crate::model::Protocol;
use std::net::{IpAddr, Ipv4Addr};

/// Name lookups used by the ipvsadm grammar and output formats.
pub trait Resolver {
    /// Canonical host name of `addr` (`gethostbyaddr`).
    fn host_name(&self, addr: IpAddr) -> Option<String>;
    /// Service name of `port` for `proto` (`getservbyport`).
    fn service_name(&self, port: u16, proto: Protocol) -> Option<String>;
    /// Address of host `name` (`gethostbyname`, IPv4 only).
    fn host_addr(&self, name: &str) -> Option<Ipv4Addr>;
    /// Port of service `name` for `proto` (`getservbyname`).
    fn service_port(&self, name: &str, proto: Protocol) -> Option<u16>;
}

/// A resolver that knows no names (what `-n` means for output).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNames;

impl Resolver for NoNames {
    fn host_name(&self, _: IpAddr) -> Option<String> {
        None
    }
    fn service_name(&self, _: u16, _: Protocol) -> Option<String> {
        None
    }
    fn host_addr(&self, _: &str) -> Option<Ipv4Addr> {
        None
    }
    fn service_port(&self, _: &str, _: Protocol) -> Option<u16> {
        None
    }
}

#[derive(Debug, Clone)]
struct HostLine {
    addr: IpAddr,
    names: Vec<String>,
}

#[derive(Debug, Clone)]
struct ServiceLine {
    port: u16,
    proto: String,
    names: Vec<String>,
}

/// Names read from hosts(5) and services(5) text; first match wins, as in
/// the C library's `files` backend.
#[derive(Debug, Clone, Default)]
pub struct FileNames {
    hosts: Vec<HostLine>,
    services: Vec<ServiceLine>,
}

/// Splits off a `#` comment and returns the whitespace-separated fields.
fn fields(line: &str) -> Vec<&str> {
    let line = line.split('#').next().unwrap_or("");
    line.split_whitespace().collect()
}

impl FileNames {
    /// Parses the given hosts(5) and services(5) contents. Malformed lines
    /// and IPv6 host lines are skipped.
    pub fn from_texts(hosts: &str, services: &str) -> Self {
        let hosts = hosts
            .lines()
            .filter_map(|l| {
                let f = fields(l);
                let addr: IpAddr = f.first()?.parse().ok()?;
                if f.len() < 2 {
                    return None;
                }
                Some(HostLine {
                    addr,
                    names: f[1..].iter().map(|s| s.to_string()).collect(),
                })
            })
            .collect();
        let services = services
            .lines()
            .filter_map(|l| {
                let f = fields(l);
                if f.len() < 2 {
                    return None;
                }
                let (port, proto) = f[1].split_once('/')?;
                let port: u16 = port.parse().ok()?;
                let mut names = vec![f[0].to_string()];
                names.extend(f[2..].iter().map(|s| s.to_string()));
                Some(ServiceLine {
                    port,
                    proto: proto.to_string(),
                    names,
                })
            })
            .collect();
        FileNames { hosts, services }
    }

    /// Reads `/etc/hosts` and `/etc/services`; a missing file means no names.
    pub fn system() -> Self {
        let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        let services = std::fs::read_to_string("/etc/services").unwrap_or_default();
        Self::from_texts(&hosts, &services)
    }
}

fn proto_word(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

impl Resolver for FileNames {
    fn host_name(&self, addr: IpAddr) -> Option<String> {
        self.hosts
            .iter()
            .find(|h| h.addr == addr)
            .and_then(|h| h.names.first().cloned())
    }
    fn service_name(&self, port: u16, proto: Protocol) -> Option<String> {
        self.services
            .iter()
            .find(|s| s.port == port && s.proto == proto_word(proto))
            .and_then(|s| s.names.first().cloned())
    }
    fn host_addr(&self, name: &str) -> Option<Ipv4Addr> {
        self.hosts
            .iter()
            .filter(|h| h.names.iter().any(|n| n == name))
            .find_map(|h| match h.addr {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => None,
            })
    }
    fn service_port(&self, name: &str, proto: Protocol) -> Option<u16> {
        self.services
            .iter()
            .find(|s| s.proto == proto_word(proto) && s.names.iter().any(|n| n == name))
            .map(|s| s.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: &str = "127.0.0.1\tlocalhost\n::1 localhost ip6-localhost\n# c\n10.0.0.1 web1 web1.example # x\n10.0.0.1 other\n";
    const SERVICES: &str = "# comment\nhttp\t\t80/tcp\t\twww\t\t# WorldWideWeb HTTP\nhttp 80/udp\ndomain 53/udp\nbad\n";

    #[test]
    fn lookups() {
        let n = FileNames::from_texts(HOSTS, SERVICES);
        assert_eq!(
            n.host_name(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
                .as_deref(),
            Some("web1")
        );
        assert_eq!(n.host_name(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))), None);
        assert_eq!(
            n.host_addr("web1.example"),
            Some(Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!(n.host_addr("localhost"), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(n.host_addr("ip6-localhost"), None);
        assert_eq!(n.service_name(80, Protocol::Tcp).as_deref(), Some("http"));
        assert_eq!(n.service_name(53, Protocol::Tcp), None);
        assert_eq!(n.service_port("www", Protocol::Tcp), Some(80));
        assert_eq!(n.service_port("www", Protocol::Udp), None);
        assert_eq!(n.service_port("domain", Protocol::Udp), Some(53));
        assert_eq!(NoNames.service_port("http", Protocol::Tcp), None);
    }
}
