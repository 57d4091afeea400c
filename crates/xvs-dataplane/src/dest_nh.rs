//! Next hops of DR and TUN dests, and whether a dest is local
//! (`DEST_NH`), resolved in user space ([`crate::nexthop`]) and kept
//! current; and asking the kernel for the neighbours still unknown.

use std::mem::size_of;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use libbpf_rs::{MapCore, MapFlags};

use crate::abi::{
    as_bytes as bytes, from_bytes, xvs_dest, xvs_dest_flags, xvs_dest_nh, xvs_nh_state,
};
use crate::dataplane::Dataplane;
use crate::error::{bpf_err, Error};
use crate::mapio;
use crate::maps::lookup;
use crate::neigh;
use crate::nexthop::{self, Via};

impl Dataplane {
    /// Resolves one DR/TUN dest's next hop now (asking for its neighbour
    /// when unknown; [`Dataplane::await_nexthops`] then waits for it) and
    /// writes it.
    pub(crate) fn refresh_nexthop(
        &self,
        dest_id: u32,
        addr: Ipv4Addr,
        via: Via,
    ) -> Result<(), Error> {
        let (nh, ask) = nexthop::Resolver::new()?.resolve(addr, via)?;
        self.maps
            .dest_nh
            .update(bytes(&dest_id), bytes(&nh), MapFlags::ANY)
            .map_err(bpf_err("DEST_NH update"))?;
        if ask.is_some() {
            if let Ok(mut p) = self.nh_pending.lock() {
                p.push((dest_id, addr, via));
            }
        }
        neigh::ask(ask.as_slice())
    }

    /// Waits, at most `timeout`, for the neighbours of the dests added or
    /// changed since the last call whose MAC was unknown, writing each next
    /// hop as it resolves: the program cannot queue packets while ARP runs
    /// (the kernel does, for IPVS), so a freshly added real server would
    /// lose its first packets. Neighbours the kernel gave up on are not
    /// waited for. Returns how many are still unresolved.
    pub fn await_nexthops(&self, timeout: Duration) -> u32 {
        let mut pending = match self.nh_pending.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(_) => return 0,
        };
        let deadline = Instant::now() + timeout;
        while !pending.is_empty() {
            let Ok(mut r) = nexthop::Resolver::new() else {
                break;
            };
            pending.retain(|&(id, addr, via)| {
                let Ok((nh, ask)) = r.resolve(addr, via) else {
                    return false;
                };
                if ask.is_none() {
                    let _ = self
                        .maps
                        .dest_nh
                        .update(bytes(&id), bytes(&nh), MapFlags::ANY);
                }
                ask.is_some_and(|hop| r.resolving(hop))
            });
            if pending.is_empty() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        pending.len() as u32
    }

    /// Resolves the next hop of every dest again from the kernel's routes,
    /// links and neighbours (for NAT dests only whether they are local),
    /// writes those that changed and asks for the neighbours still
    /// unknown. Call it when they change
    /// ([`nexthop::Monitor`]), when `drop_no_neigh` grows, and now and
    /// then. Returns `(resolved, unresolved)` dests.
    pub fn refresh_nexthops(&self) -> Result<(u32, u32), Error> {
        let mut dests = Vec::new();
        mapio::read_each(&self.maps.dest, 4, size_of::<xvs_dest>(), |k, v| {
            let Ok(k) = <[u8; 4]>::try_from(k) else {
                return;
            };
            let d = from_bytes::<xvs_dest>(v);
            let avail = d.flags & xvs_dest_flags::XVS_DEST_F_AVAILABLE.0 as u8 != 0;
            if avail {
                dests.push((u32::from_ne_bytes(k), d));
            }
        })?;
        if dests.is_empty() {
            return Ok((0, 0));
        }
        let mut r = nexthop::Resolver::new()?;
        let (mut ok, mut ask) = (0, Vec::new());
        for (id, d) in dests {
            let via = Via::of(d.fwd);
            let (nh, want) = r.resolve(crate::repr::ip4_of(&d.addr), via)?;
            let local = nh.state == xvs_nh_state::XVS_NH_LOCAL.0 as u8;
            if nh.state == xvs_nh_state::XVS_NH_OK.0 as u8 || (local && via != Via::Nat) {
                ok += 1;
            }
            ask.extend(want);
            let cur = self
                .maps
                .dest_nh
                .lookup(bytes(&id), MapFlags::ANY)
                .map_err(bpf_err("DEST_NH lookup"))?;
            if cur.as_deref() != Some(bytes(&nh)) {
                self.maps
                    .dest_nh
                    .update(bytes(&id), bytes(&nh), MapFlags::ANY)
                    .map_err(bpf_err("DEST_NH update"))?;
            }
        }
        ask.sort();
        ask.dedup();
        let unresolved = ask.len() as u32;
        neigh::ask(&ask)?;
        Ok((ok, unresolved))
    }

    /// The next hop of a dest slot as the program sees it.
    pub fn dest_nexthop(&self, dest_id: u32) -> Result<xvs_dest_nh, Error> {
        self.check_dest_id(dest_id)?;
        Ok(lookup(&self.maps.dest_nh, &dest_id, "DEST_NH lookup")?.unwrap_or_default())
    }

    /// Starts neighbour (ARP) resolution towards each address: the next
    /// hop of its route (the address itself when on-link) on the route's
    /// interface, created as a kernel-managed entry where the kernel
    /// supports it, so it stays resolved. DR drops packets while the real
    /// server's MAC is unknown (counter `drop_no_neigh`): call this when a
    /// `Route`/`Tunnel` dest is added and whenever that counter grows.
    /// Returns once the requests are made, not when ARP has answered.
    pub fn resolve_neighbours(&self, addrs: &[Ipv4Addr]) -> Result<(), Error> {
        neigh::resolve(addrs)
    }
}
