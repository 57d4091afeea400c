//! `ipvsadm -L --daemon` and `ipvsadm -Lc`: the sync daemons and the
//! connection table.

use super::addrport;
use crate::api::ConnEntry;
use crate::ipvsadm::ListOptions;
use crate::model::SyncDaemon;
use crate::names::Resolver;
use std::fmt::Write;

/// `ipvsadm -L --daemon` (`list_daemon`): one line per running sync
/// daemon, the master first (the kernel's dump order), e.g.
/// `master sync daemon (mcast=eth0, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)`.
/// As ipvsadm, it leaves out a zero maxlen, port or TTL and an unspecified
/// group (the kernel always fills them in). Nothing when none runs.
pub fn daemons(daemons: &[SyncDaemon]) -> String {
    let mut v: Vec<&SyncDaemon> = daemons.iter().collect();
    v.sort_by_key(|d| d.state);
    let mut out = String::new();
    for d in v {
        let _ = write!(
            out,
            "{} sync daemon (mcast={}, syncid={}",
            d.state, d.mcast_ifn, d.syncid
        );
        if d.sync_maxlen != 0 {
            let _ = write!(out, ", maxlen={}", d.sync_maxlen);
        }
        if !d.mcast_group.is_unspecified() {
            let _ = write!(out, ", group={}", d.mcast_group);
        }
        if d.mcast_port != 0 {
            let _ = write!(out, ", port={}", d.mcast_port);
        }
        if d.mcast_ttl != 0 {
            let _ = write!(out, ", ttl={}", d.mcast_ttl);
        }
        out.push_str(")\n");
    }
    out
}

/// `ipvsadm -Lc` (`list_conn`/`print_conn`): the connection table in the
/// order given. Expiry is shown as `mm:ss` of the whole seconds left, as
/// `/proc/net/ip_vs_conn` truncates milliseconds to seconds.
pub fn conns(conns: &[ConnEntry], opts: &ListOptions, names: &dyn Resolver) -> String {
    let mut out = String::from("IPVS connection entries\n");
    if opts.persistent_conn {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        );
    } else {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} destination",
            "state", "source", "virtual"
        );
    }
    for c in conns {
        let n = opts.numeric;
        // A fwmark template has protocol 0 (`IP`): no service names.
        let (pname, proto) = if c.fwmark != 0 {
            ("IP", None)
        } else {
            (c.proto.name(), Some(c.proto))
        };
        let cname = addrport(c.caddr, c.cport, proto, n, names);
        let vname = addrport(c.vaddr, c.vport, proto, n, names);
        let dname = addrport(c.daddr, c.dport, proto, n, names);
        // The kernel prints expiry as an unsigned 32-bit number of seconds.
        let expires = (c.expires_ms / 1000).min(u32::MAX as u64);
        let expire = format!("{:02}:{:02}", expires / 60, expires % 60);
        // A template with engine data has the long entry format with
        // --persistent-conn (ipvsadm's 11 fields; dname 16 wide, the
        // engine 18, as print_conn has them); everything else the short.
        match &c.pe {
            Some(pe) if opts.persistent_conn => {
                let _ = writeln!(
                    out,
                    "{:<3} {:<6} {:<11} {:<18} {:<18} {:<16} {:<18} {}",
                    pname,
                    expire,
                    c.state.name(),
                    cname,
                    vname,
                    dname,
                    pe.name,
                    pe.data
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "{:<3} {:<6} {:<11} {:<18} {:<18} {}",
                    pname,
                    expire,
                    c.state.name(),
                    cname,
                    vname,
                    dname
                );
            }
        }
    }
    out
}
