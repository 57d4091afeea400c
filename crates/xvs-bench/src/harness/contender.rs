//! The contenders: who is measured, on which testbed, with which workloads.

/// Who is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Contender {
    Direct,
    Fwd,
    Nft,
    Haproxy,
    Nginx,
    IpvsNat,
    XvsNat,
    XvsNatXdp,
    XvsNat1,
    DirectDr,
    IpvsDr,
    XvsDr,
    XvsDrXdp,
    IpvsTun,
    XvsTun,
    XvsTunXdp,
    XdpDrop,
    XdpTx,
}

pub const ALL: [Contender; 18] = [
    Contender::Direct,
    Contender::Fwd,
    Contender::Nft,
    Contender::Haproxy,
    Contender::Nginx,
    Contender::IpvsNat,
    Contender::XvsNat,
    Contender::XvsNatXdp,
    Contender::XvsNat1,
    Contender::DirectDr,
    Contender::IpvsDr,
    Contender::XvsDr,
    Contender::XvsDrXdp,
    Contender::IpvsTun,
    Contender::XvsTun,
    Contender::XvsTunXdp,
    Contender::XdpDrop,
    Contender::XdpTx,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BedId {
    Nat,
    Dr,
    Tun,
}

impl Contender {
    pub fn name(self) -> &'static str {
        match self {
            Contender::Direct => "direct",
            Contender::Fwd => "kernel-fwd",
            Contender::Nft => "nft-nat",
            Contender::Haproxy => "haproxy",
            Contender::Nginx => "nginx-stream",
            Contender::IpvsNat => "ipvs-nat",
            Contender::XvsNat => "xvs-nat",
            Contender::XvsNatXdp => "xvs-nat-xdp",
            Contender::XvsNat1 => "xvs-nat-1rs",
            Contender::DirectDr => "direct-dr",
            Contender::IpvsDr => "ipvs-dr",
            Contender::XvsDr => "xvs-dr",
            Contender::XvsDrXdp => "xvs-dr-xdp",
            Contender::IpvsTun => "ipvs-tun",
            Contender::XvsTun => "xvs-tun",
            Contender::XvsTunXdp => "xvs-tun-xdp",
            Contender::XdpDrop => "xdp-drop",
            Contender::XdpTx => "xdp-tx",
        }
    }

    pub fn by_name(n: &str) -> Option<Contender> {
        ALL.into_iter().find(|c| c.name() == n)
    }

    /// One line for the report.
    pub fn what(self) -> &'static str {
        match self {
            Contender::Direct => "client → rs1 on a link of their own, no load balancer (NAT testbed)",
            Contender::Fwd => "client → rs1 routed by the director's kernel (ip_forward), no load balancing",
            Contender::Nft => "director: nftables `dnat to numgen inc mod 3 map {…}` (kube-proxy nftables style), conntrack",
            Contender::Haproxy => "director: HAProxy TCP mode, roundrobin, 2 threads (TCP only)",
            Contender::Nginx => "director: nginx `stream` proxy, 2 workers (TCP; UDP with proxy_responses 0)",
            Contender::IpvsNat => "director: the kernel's IPVS, `ipvsadm -A -t VIP:80 -s rr`, `-a … -m` ×3 (NAT, `ip_forward=1`), and `-u VIP:9` likewise",
            Contender::XvsNat => "director: xvsd (`--attach tc`, what auto picks on veth), `-s rr`, `-m` (NAT)",
            Contender::XvsNatXdp => "the same with `--attach xdp` (native XDP on veth)",
            Contender::XvsNat1 => "`xvs-nat` with rs1 as the only real server: the same work on the same one server as `kernel-fwd`, which cannot spread it",
            Contender::DirectDr => "client → router → rs1, no load balancer (DR testbed baseline)",
            Contender::IpvsDr => "director: the kernel's IPVS, `ipvsadm … -s rr`, `-g` (DR testbed, the real servers of `xvs-dr`)",
            Contender::XvsDr => "director: xvsd `--attach tc`, `-s rr`, `-g` (DR testbed)",
            Contender::XvsDrXdp => "the same with `--attach xdp`",
            Contender::IpvsTun => "director: the kernel's IPVS, `ipvsadm … -s rr`, `-i` IPIP (DR testbed, the real servers of `xvs-tun`)",
            Contender::XvsTun => "director: xvsd `--attach tc`, `-s rr`, `-i` IPIP (DR testbed, RS decap by xvs-realserver)",
            Contender::XvsTunXdp => "the same with `--attach xdp`",
            Contender::XdpDrop => "director eth0: `return XDP_DROP;` (counted at director eth0)",
            Contender::XdpTx => "director eth0: `return XDP_TX;` (bounced frames counted back at the client)",
        }
    }

    pub(crate) fn bed(self) -> BedId {
        match self {
            Contender::DirectDr | Contender::IpvsDr | Contender::XvsDr | Contender::XvsDrXdp => {
                BedId::Dr
            }
            Contender::IpvsTun | Contender::XvsTun | Contender::XvsTunXdp => BedId::Tun,
            _ => BedId::Nat,
        }
    }

    pub fn http(self) -> bool {
        !matches!(self, Contender::XdpDrop | Contender::XdpTx)
    }

    pub fn udp(self) -> bool {
        self != Contender::Haproxy
    }

    /// The kernel's IPVS: needs `ip_vs` and `ipvsadm`, skipped without.
    pub fn ipvs(self) -> bool {
        matches!(
            self,
            Contender::IpvsNat | Contender::IpvsDr | Contender::IpvsTun
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipvs_contenders() {
        for (n, bed) in [
            ("ipvs-nat", BedId::Nat),
            ("ipvs-dr", BedId::Dr),
            ("ipvs-tun", BedId::Tun),
        ] {
            let c = Contender::by_name(n).unwrap();
            assert!(c.ipvs() && c.http() && c.udp(), "{n}");
            assert_eq!(c.bed(), bed, "{n}");
        }
        assert_eq!(ALL.iter().filter(|c| c.ipvs()).count(), 3);
        let mut names: Vec<&str> = ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }
}
