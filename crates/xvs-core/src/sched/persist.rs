//! Persistence templates (`-p`, `-M`) and connection thresholds (`-x`, `-y`)
//! as pure functions, restating `ip_vs_sched_persist` (`ip_vs_core.c`),
//! `ip_vs_check_template`, `ip_vs_bind_dest` / `ip_vs_unbind_dest`
//! (`ip_vs_conn.c`) and `__ip_vs_update_dest` (`ip_vs_ctl.c`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::reference::{DestView, FlowKey};

/// The FTP control port: a persistent service on port 21 keys its templates
/// with virtual port 0 so the data connections share the template.
pub const FTPPORT: u16 = 21;

/// The lookup key of a persistence template: the kernel's
/// `<protocol, caddr & netmask, cport 0, vaddr, vport>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PersistKey {
    /// IP protocol of the packet.
    pub proto: u8,
    /// Client address masked with the service's persistence netmask.
    pub caddr: IpAddr,
    /// The packet's destination address (the VIP), or the mark of a
    /// fwmark service as [`fwmark_vaddr`] writes it.
    pub vaddr: IpAddr,
    /// The virtual port, or 0 (see [`persist_key`]).
    pub vport: u16,
}

/// The template key `ip_vs_sched_persist` looks up for `flow` on a
/// persistent service with virtual port `svc_port` and netmask `netmask`.
///
/// * `caddr = saddr & netmask` (client port always 0 in a template).
/// * `vport = flow.dport` when the packet's port equals the service port and
///   the service port is not 21 (FTP); otherwise 0 — so a port-0 ("all
///   ports") service keys by address only and an FTP service shares one
///   template between control and data connections.
/// * `vaddr = flow.daddr`, `proto = flow.proto`. (Firewall-mark services
///   key by the mark instead: [`persist_key_fwmark`].)
pub fn persist_key(svc_port: u16, netmask: IpAddr, flow: &FlowKey) -> PersistKey {
    let caddr = masked(flow.saddr, netmask);
    let vport = if flow.dport == svc_port && svc_port != FTPPORT {
        flow.dport
    } else {
        0
    };
    PersistKey {
        proto: flow.proto,
        caddr,
        vaddr: flow.daddr,
        vport,
    }
}

/// The template key of a persistent fwmark service with mark `mark`:
/// `<IPPROTO_IP, caddr & netmask, 0, htonl(mark), 0>`, one template for
/// every address, port and protocol the mark groups.
pub fn persist_key_fwmark(mark: u32, netmask: IpAddr, flow: &FlowKey) -> PersistKey {
    PersistKey {
        proto: 0,
        caddr: masked(flow.saddr, netmask),
        vaddr: fwmark_vaddr(mark, flow.saddr.is_ipv6()),
        vport: 0,
    }
}

/// A fwmark template's virtual address: `htonl(mark)` in the first word
/// of the kernel's address union, the rest zero, so mark 1 of an IPv6
/// service is `0:1::`.
pub fn fwmark_vaddr(mark: u32, ipv6: bool) -> IpAddr {
    if ipv6 {
        IpAddr::V6(Ipv6Addr::from(u128::from(mark) << 96))
    } else {
        IpAddr::V4(Ipv4Addr::from(mark))
    }
}

/// `addr` masked with `netmask` (`ipv6_addr_prefix` for IPv6, whose
/// netmask the kernel keeps as a prefix length). A netmask of the other
/// family (never configured so) leaves the address whole.
pub fn masked(addr: IpAddr, netmask: IpAddr) -> IpAddr {
    match (addr, netmask) {
        (IpAddr::V4(a), IpAddr::V4(m)) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & u32::from(m))),
        (IpAddr::V6(a), IpAddr::V6(m)) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & u128::from(m))),
        (a, _) => a,
    }
}

/// `IP_VS_PEDATA_MAXLEN`: the most bytes of persistence-engine data (the
/// SIP Call-ID) a template keeps.
pub const PE_DATA_MAX: usize = 255;

/// The hash a `--pe sip` template is keyed with beside the Call-ID's
/// length (the data plane's `SIP_TMPL`): 64-bit FNV-1a of the Call-ID's
/// bytes. IPVS hashes the Call-ID too (jhash, only to pick a bucket) and
/// compares the bytes; xvs compares length and hash, which a collision
/// would have to match in all 64 bits.
pub fn callid_hash(callid: &[u8]) -> u64 {
    callid.iter().fold(0xcbf2_9ce4_8422_2325, |h, &c| {
        (h ^ u64::from(c)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `ip_vs_check_template`: an existing template pointing at `dest` is used
/// when the dest is still in the service (`Some`) and not (with the sysctl
/// `expire_quiescent_template` set) quiesced to weight 0. Note that neither
/// weight 0 (by default) nor OVERLOAD invalidate a template: persistent
/// clients keep reaching a quiesced or overloaded server.
pub fn template_usable(dest: Option<&DestView>, expire_quiescent_template: bool) -> bool {
    match dest {
        None => false,
        Some(d) => !(expire_quiescent_template && d.weight == 0),
    }
}

/// The real-server port of a connection created through a template:
/// the dest's port when the packet went to the service port and the dest
/// has a non-zero port, else the packet's own destination port (port-0
/// services forward to the port the client asked for).
pub fn persist_conn_dport(svc_port: u16, flow_dport: u16, dest_port: u16) -> u16 {
    if flow_dport == svc_port && dest_port != 0 {
        dest_port
    } else {
        flow_dport
    }
}

/// What just happened to a destination's connection counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnEvent {
    /// A connection (or template) was bound to the dest (`ip_vs_bind_dest`).
    Bind,
    /// A connection (or template) was unbound (`ip_vs_unbind_dest`).
    Unbind,
}

/// The new `IP_VS_DEST_F_OVERLOAD` after `event`, with `total` =
/// `activeconns + inactconns` **after** the event (persistence templates are
/// not counted), thresholds `u` (`-x`) and `l` (`-y`), and the current flag.
///
/// * Bind only ever sets: `u != 0 && total >= u` → set, else unchanged.
/// * Unbind only ever clears: with `l != 0`, when `total < l`; else with
///   `u != 0`, when `total * 4 < u * 3` (below 3/4 of `u`); with neither
///   threshold, always.
///
/// Arithmetic is 64-bit (the kernel's `u32` product would wrap above
/// `u = 1431655765`).
pub fn overload_after(event: ConnEvent, total: u32, u: u32, l: u32, current: bool) -> bool {
    match event {
        ConnEvent::Bind => current || (u != 0 && total >= u),
        ConnEvent::Unbind => {
            let clear = if l != 0 {
                total < l
            } else if u != 0 {
                (total as u64) * 4 < (u as u64) * 3
            } else {
                true
            };
            current && !clear
        }
    }
}

/// The OVERLOAD flag after an edit (or add) of the dest's thresholds
/// (`__ip_vs_update_dest`): cleared when the new upper threshold is 0 or
/// higher than the old one, else unchanged (even if connections now exceed
/// a lowered threshold — the next bind sets it).
pub fn overload_after_edit(old_u: u32, new_u: u32, current: bool) -> bool {
    if new_u == 0 || new_u > old_u {
        false
    } else {
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callid_hash_is_fnv1a_64() {
        // FNV-1a's published test vectors.
        assert_eq!(callid_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(callid_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(callid_hash(b"foobar"), 0x8594_4171_f739_67e8);
    }

    fn flow(saddr: [u8; 4], dport: u16) -> FlowKey {
        FlowKey::tcp(
            Ipv4Addr::from(saddr),
            40000,
            Ipv4Addr::new(10, 0, 0, 1),
            dport,
        )
    }

    #[test]
    fn key_masks_client() {
        let k = persist_key(
            80,
            IpAddr::V4(Ipv4Addr::new(255, 255, 255, 0)),
            &flow([192, 168, 7, 33], 80),
        );
        assert_eq!(
            k,
            PersistKey {
                proto: 6,
                caddr: IpAddr::V4(Ipv4Addr::new(192, 168, 7, 0)),
                vaddr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                vport: 80
            }
        );
        let k2 = persist_key(
            80,
            IpAddr::V4(Ipv4Addr::new(255, 255, 255, 0)),
            &flow([192, 168, 7, 200], 80),
        );
        assert_eq!(k, k2);
        let k3 = persist_key(
            80,
            IpAddr::V4(Ipv4Addr::BROADCAST),
            &flow([192, 168, 7, 200], 80),
        );
        assert_eq!(k3.caddr, Ipv4Addr::new(192, 168, 7, 200));
    }

    #[test]
    fn key_port_zero_and_ftp() {
        // port-0 service: every port shares the template
        let a = persist_key(0, IpAddr::V4(Ipv4Addr::BROADCAST), &flow([1, 2, 3, 4], 443));
        let b = persist_key(0, IpAddr::V4(Ipv4Addr::BROADCAST), &flow([1, 2, 3, 4], 22));
        assert_eq!(a.vport, 0);
        assert_eq!(a, b);
        // FTP: vport 0 too
        assert_eq!(
            persist_key(21, IpAddr::V4(Ipv4Addr::BROADCAST), &flow([1, 2, 3, 4], 21)).vport,
            0
        );
        // UDP and TCP are distinct templates
        let mut u = flow([1, 2, 3, 4], 53);
        u.proto = 17;
        assert_ne!(
            persist_key(53, IpAddr::V4(Ipv4Addr::BROADCAST), &u),
            persist_key(53, IpAddr::V4(Ipv4Addr::BROADCAST), &flow([1, 2, 3, 4], 53))
        );
    }

    #[test]
    fn template_rules() {
        let d = DestView::new(1, 0);
        assert!(template_usable(Some(&d), false));
        assert!(!template_usable(Some(&d), true));
        assert!(template_usable(
            Some(&DestView::new(1, 3).overloaded()),
            true
        ));
        assert!(!template_usable(None, false));
        assert_eq!(persist_conn_dport(0, 443, 0), 443);
        assert_eq!(persist_conn_dport(80, 80, 8080), 8080);
        assert_eq!(persist_conn_dport(80, 80, 0), 80);
    }

    #[test]
    fn thresholds() {
        use ConnEvent::*;
        // -x 10: set at the 10th connection
        assert!(!overload_after(Bind, 9, 10, 0, false));
        assert!(overload_after(Bind, 10, 10, 0, false));
        // bind never clears
        assert!(overload_after(Bind, 1, 10, 0, true));
        // no l: clears below 3/4 of u (7.5 -> 7 clears, 8 does not)
        assert!(overload_after(Unbind, 8, 10, 0, true));
        assert!(!overload_after(Unbind, 7, 10, 0, true));
        // with l = 5
        assert!(overload_after(Unbind, 5, 10, 5, true));
        assert!(!overload_after(Unbind, 4, 10, 5, true));
        // unbind never sets
        assert!(!overload_after(Unbind, 50, 10, 5, false));
        // no thresholds: unbind clears
        assert!(!overload_after(Unbind, 50, 0, 0, true));
        assert!(!overload_after(Bind, 50, 0, 0, false));
        // l without u: bind never sets, unbind clears below l
        assert!(!overload_after(Bind, 50, 0, 5, false));
        assert!(overload_after(Unbind, 6, 0, 5, true));
        // large u: no wrap
        assert!(overload_after(
            Unbind,
            3_500_000_000,
            4_000_000_000,
            0,
            true
        ));
        // edits
        assert!(!overload_after_edit(10, 0, true));
        assert!(!overload_after_edit(10, 20, true));
        assert!(overload_after_edit(10, 10, true));
        assert!(overload_after_edit(10, 5, true));
        assert!(!overload_after_edit(10, 5, false));
    }

    #[test]
    fn ipv6_templates_mask_by_prefix_and_carry_the_mark_in_the_first_word() {
        let c: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        let v: IpAddr = "2001:db8:ffff::10".parse().unwrap();
        let flow = FlowKey::tcp(c, 40000, v, 443);
        let m64 = crate::model::prefix_mask(c, 64);
        let k = persist_key(443, m64, &flow);
        assert_eq!(k.caddr, "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_eq!((k.vaddr, k.vport, k.proto), (v, 443, 6));
        let m61 = crate::model::prefix_mask(c, 61);
        assert_eq!(
            persist_key(443, m61, &flow).caddr,
            "2001:db8:1::".parse::<IpAddr>().unwrap()
        );
        let f = persist_key_fwmark(1, m64, &flow);
        assert_eq!(f.vaddr, "0:1::".parse::<IpAddr>().unwrap());
        assert_eq!((f.proto, f.vport), (0, 0));
        assert_eq!(fwmark_vaddr(0x0102_0304, false), IpAddr::from([1, 2, 3, 4]));
    }
}
