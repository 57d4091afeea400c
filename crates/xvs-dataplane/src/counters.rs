//! The program's own counters (`XVS_CNT`), by name.

use libbpf_rs::{MapCore, MapFlags};

use crate::abi::{as_bytes as bytes, from_bytes, xvs_counter};
use crate::dataplane::Dataplane;
use crate::error::{bpf_err, Error};
use crate::limits::CNT_SLOTS;

/// How many counters the program has (`XVS_CNT_MAX`).
const N: usize = xvs_counter::XVS_CNT_MAX.0 as usize;

/// The `XVS_CNT` counters, each name beside its `enum xvs_counter`
/// value: a reordered or inserted enumerator fails the build instead of
/// mislabelling counters.
const COUNTERS: [(xvs_counter, &str); N] = [
    (xvs_counter::XVS_CNT_RX, "rx"),
    (xvs_counter::XVS_CNT_PASS_NOT_IP, "pass_not_ip"),
    (xvs_counter::XVS_CNT_PASS_TRUNCATED, "pass_truncated"),
    (xvs_counter::XVS_CNT_PASS_BAD_IP, "pass_bad_ip"),
    (xvs_counter::XVS_CNT_PASS_FRAGMENT, "pass_fragment"),
    (xvs_counter::XVS_CNT_PASS_PROTO, "pass_proto"),
    (xvs_counter::XVS_CNT_PASS_NO_SVC, "pass_no_svc"),
    (xvs_counter::XVS_CNT_PASS_TCP_NO_CONN, "pass_tcp_no_conn"),
    (xvs_counter::XVS_CNT_PASS_NO_DEST, "pass_no_dest"),
    (xvs_counter::XVS_CNT_PASS_FWD_UNSUPP, "pass_fwd_unsupported"),
    (xvs_counter::XVS_CNT_PASS_TTL, "pass_ttl"),
    (xvs_counter::XVS_CNT_PASS_STALE, "pass_stale"),
    (xvs_counter::XVS_CNT_PASS_ICMP, "pass_icmp"),
    (xvs_counter::XVS_CNT_DROP_CONN_FULL, "drop_conn_full"),
    (xvs_counter::XVS_CNT_REPLY_TAKEOVER, "reply_takeover"),
    (xvs_counter::XVS_CNT_CONN_NEW, "conn_new"),
    (xvs_counter::XVS_CNT_NAT_IN, "nat_in"),
    (xvs_counter::XVS_CNT_NAT_OUT, "nat_out"),
    (xvs_counter::XVS_CNT_ICMP_IN, "icmp_in"),
    (xvs_counter::XVS_CNT_ICMP_OUT, "icmp_out"),
    (xvs_counter::XVS_CNT_FIB_NO_NEIGH, "fib_no_neigh"),
    (xvs_counter::XVS_CNT_FIB_FRAG_NEEDED, "fib_frag_needed"),
    (xvs_counter::XVS_CNT_FIB_OTHER, "fib_other"),
    (xvs_counter::XVS_CNT_TX, "tx"),
    (xvs_counter::XVS_CNT_REDIRECT, "redirect"),
    (xvs_counter::XVS_CNT_DR_IN, "dr_in"),
    (xvs_counter::XVS_CNT_TUN_IN, "tun_in"),
    (xvs_counter::XVS_CNT_DROP_NO_NEIGH, "drop_no_neigh"),
    (xvs_counter::XVS_CNT_DROP_FIB, "drop_fib"),
    (xvs_counter::XVS_CNT_ICMP_FRAG_NEEDED, "icmp_frag_needed"),
    (xvs_counter::XVS_CNT_DROP_TOO_BIG, "drop_too_big"),
    (xvs_counter::XVS_CNT_DROP_ENCAP, "drop_encap"),
    (xvs_counter::XVS_CNT_CONN_REUSE, "conn_reuse"),
    (xvs_counter::XVS_CNT_PERSIST_HIT, "persist_hit"),
    (xvs_counter::XVS_CNT_PERSIST_NEW, "persist_new"),
    (xvs_counter::XVS_CNT_DROP_TMPL_FULL, "drop_tmpl_full"),
    (xvs_counter::XVS_CNT_OPS, "ops"),
    (xvs_counter::XVS_CNT_NH_FILL, "nh_fill"),
    (xvs_counter::XVS_CNT_PEER, "peer"),
    (xvs_counter::XVS_CNT_DROP_DEST_GONE, "drop_dest_gone"),
    (xvs_counter::XVS_CNT_PASS_LOCAL, "pass_local"),
    (xvs_counter::XVS_CNT_DROP_LOOPBACK, "drop_loopback"),
    (xvs_counter::XVS_CNT_LOCAL_OUT, "local_out"),
    (xvs_counter::XVS_CNT_PASS_SCTP_NO_INIT, "pass_sctp_no_init"),
    (xvs_counter::XVS_CNT_STATE_RACE, "state_race"),
    (xvs_counter::XVS_CNT_DROP_SIP, "drop_sip"),
];
assert_enum_order!(COUNTERS);

/// Names of the `XVS_CNT` counters, indexed by `enum xvs_counter` value.
pub const COUNTER_NAMES: [&str; N] = {
    let mut out = [""; N];
    let mut i = 0;
    while i < COUNTERS.len() {
        out[i] = COUNTERS[i].1;
        i += 1;
    }
    out
};
const _: () = assert!(COUNTER_NAMES.len() <= CNT_SLOTS as usize);

impl Dataplane {
    /// Data-plane counters by name (summed over CPUs).
    pub fn counters(&self) -> Result<Vec<(&'static str, u64)>, Error> {
        let mut out = Vec::with_capacity(COUNTER_NAMES.len());
        for (i, name) in COUNTER_NAMES.iter().enumerate() {
            let vals = self
                .maps
                .cnt
                .lookup_percpu(bytes(&(i as u32)), MapFlags::ANY)
                .map_err(bpf_err("XVS_CNT lookup"))?
                .unwrap_or_default();
            let sum = vals.iter().map(|v| from_bytes::<u64>(v)).sum();
            out.push((*name, sum));
        }
        Ok(out)
    }

    /// One counter by name (0 when unknown).
    pub fn counter(&self, name: &str) -> Result<u64, Error> {
        Ok(self
            .counters()?
            .into_iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, v)| v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_names_are_unique() {
        let mut v = COUNTER_NAMES.to_vec();
        v.sort();
        v.dedup();
        assert_eq!(v.len(), COUNTER_NAMES.len());
    }
}
