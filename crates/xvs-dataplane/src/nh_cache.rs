//! The program's next-hop cache (`XVS_NH_CFG`): how long it may reuse a
//! `bpf_fib_lookup` answer, and the generation that drops them all.

use std::time::Duration;

use libbpf_rs::{MapCore, MapFlags, MapHandle};

use crate::abi::{as_bytes as bytes, xvs_nh_cfg};
use crate::dataplane::Dataplane;
use crate::error::{bpf_err, Error};
use crate::maps::lookup;

/// The next-hop cache TTL [`Dataplane::open`] sets: a changed route or
/// neighbour MAC is followed within 100 ms (see
/// [`Dataplane::set_nexthop_ttl`]).
pub const NEXTHOP_TTL_DEFAULT: Duration = Duration::from_millis(100);

impl Dataplane {
    /// How long the program may reuse a next hop (egress interface and
    /// MACs) that `bpf_fib_lookup` found, before it asks the fib again:
    /// the bound within which a changed route or neighbour MAC is
    /// followed ([`NEXTHOP_TTL_DEFAULT`] after [`Dataplane::open`]). Zero
    /// turns the cache off: every packet takes the fib lookup. Also drops
    /// every cached next hop.
    pub fn set_nexthop_ttl(&self, ttl: Duration) -> Result<(), Error> {
        let gen = self.nh_cfg()?.r#gen.wrapping_add(1);
        write_nh_cfg(&self.maps.nh_cfg, ttl, gen)
    }

    /// The next-hop cache's TTL ([`Dataplane::set_nexthop_ttl`]).
    pub fn nexthop_ttl(&self) -> Result<Duration, Error> {
        Ok(Duration::from_nanos(self.nh_cfg()?.ttl_ns))
    }

    /// Drops every cached next hop at once (the next packet to each
    /// destination takes the fib lookup): call it when routes or
    /// neighbours are known to have changed, to follow them before the
    /// TTL runs out.
    pub fn flush_nexthops(&self) -> Result<(), Error> {
        let cfg = self.nh_cfg()?;
        write_nh_cfg(
            &self.maps.nh_cfg,
            Duration::from_nanos(cfg.ttl_ns),
            cfg.r#gen.wrapping_add(1),
        )
    }

    /// `XVS_NH_CFG[0]` as the program reads it.
    fn nh_cfg(&self) -> Result<xvs_nh_cfg, Error> {
        lookup(&self.maps.nh_cfg, &0u32, "XVS_NH_CFG lookup")?
            .ok_or_else(|| Error::Abi("XVS_NH_CFG slot 0 missing".into()))
    }
}

/// Writes `XVS_NH_CFG[0]`: the TTL (saturated at `u64::MAX` ns) and the
/// generation.
pub(crate) fn write_nh_cfg(map: &MapHandle, ttl: Duration, gen: u32) -> Result<(), Error> {
    let cfg = xvs_nh_cfg {
        ttl_ns: u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX),
        r#gen,
        pad: 0,
    };
    map.update(bytes(&0u32), bytes(&cfg), MapFlags::ANY)
        .map_err(bpf_err("XVS_NH_CFG update"))
}
