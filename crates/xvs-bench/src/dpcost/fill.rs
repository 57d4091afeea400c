//! Filling the connection table with synthetic entries.

use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;

use anyhow::{bail, Context, Result};
use xvs_testbed::{rs_ip, VIP};

use crate::sys;

/// Insert synthetic connections `from..to` (keys 10.x.y.z:sport → VIP:80
/// TCP, zero values) with `BPF_MAP_UPDATE_BATCH`.
pub(super) fn fill(conn: &OwnedFd, mi: &sys::MapInfo, from: u64, to: u64) -> Result<()> {
    const CHUNK: u64 = 65536;
    let ks = mi.key_size as usize;
    let vs = mi.value_size as usize;
    let vip: Ipv4Addr = VIP.parse()?;
    let values = vec![0u8; vs * CHUNK as usize];
    let mut keys = vec![0u8; ks * CHUNK as usize];
    let mut i = from;
    while i < to {
        let n = (to - i).min(CHUNK);
        for j in 0..n {
            let k = &mut keys[(j as usize) * ks..(j as usize + 1) * ks];
            k.fill(0);
            let id = i + j;
            let addr = 0x0a00_0000u32 | (id & 0x00ff_ffff) as u32;
            k[0..4].copy_from_slice(&addr.to_be_bytes());
            if ks >= 13 {
                k[4..8].copy_from_slice(&vip.octets());
                k[8..10].copy_from_slice(&(1 + (id >> 24) as u16).to_be_bytes());
                k[10..12].copy_from_slice(&80u16.to_be_bytes());
                k[12] = 6;
            }
        }
        let done = sys::map_update_batch(
            conn,
            &keys[..n as usize * ks],
            &values[..n as usize * vs],
            n as u32,
        )
        .with_context(|| format!("filling CONN_MAP at entry {i}"))?;
        if u64::from(done) != n {
            bail!("filling CONN_MAP: {done} of {n} inserted at entry {i}");
        }
        i += n;
    }
    Ok(())
}

/// Writes `n` live NAT connections into xvsd's `CONN_MAP`, both entries
/// each, as the program makes them: clients `10.x.y.z:1024+` to `VIP:80`,
/// spread over rs1..rs3 (dest ids 0..2 of the only service, id 0),
/// ESTABLISHED and seen just now, so an expiry walk reads every one and
/// deletes none.
pub fn fill_nat_conns(conn: &OwnedFd, n: u32) -> Result<()> {
    use xvs_dataplane::abi::{
        as_bytes, xvs_conn, xvs_conn_flags, xvs_conn_key, xvs_fwd, xvs_state,
    };
    const CHUNK: u32 = 32768;
    let vip: Ipv4Addr = VIP.parse()?;
    let rs: Vec<Ipv4Addr> = (1..=3u8)
        .map(|i| rs_ip(i).parse())
        .collect::<Result<_, _>>()?;
    let now = xvs_dataplane::monotonic_ns();
    let key = |saddr, sport, daddr, dport| xvs_conn_key::new(6, saddr, sport, daddr, dport);
    let mut i = 0;
    while i < n {
        let m = (n - i).min(CHUNK);
        let mut keys = Vec::with_capacity(2 * m as usize * size_of::<xvs_conn_key>());
        let mut vals = Vec::with_capacity(2 * m as usize * size_of::<xvs_conn>());
        for id in i..i + m {
            let client = Ipv4Addr::from(0x0a00_0000 | (id & 0x00ff_ffff));
            let cport = 1024 + (id >> 24) as u16;
            let dest = id % 3;
            let fwd = key(client, cport, vip, 80);
            let rep = key(rs[dest as usize], 80, client, cport);
            let entry = |peer: xvs_conn_key, flags: u8| xvs_conn {
                last_seen_ns: now,
                peer,
                svc_id: 0,
                dest_id: dest,
                state: xvs_state::XVS_S_ESTABLISHED.0,
                fwd: xvs_fwd::XVS_FWD_MASQ.0 as u8,
                flags,
                ..Default::default()
            };
            keys.extend_from_slice(as_bytes(&fwd));
            vals.extend_from_slice(as_bytes(&entry(rep, 0)));
            keys.extend_from_slice(as_bytes(&rep));
            let reply = xvs_conn_flags::XVS_CONN_F_REPLY.0 as u8;
            vals.extend_from_slice(as_bytes(&entry(fwd, reply)));
        }
        let done = sys::map_update_batch(conn, &keys, &vals, 2 * m)
            .with_context(|| format!("writing connection {i} into CONN_MAP"))?;
        if done != 2 * m {
            bail!(
                "writing CONN_MAP: {done} of {} entries at connection {i}",
                2 * m
            );
        }
        i += m;
    }
    Ok(())
}
