//! The mark classifier's maps (`FWM_ADDR`, `FWM_PORT`): written from the
//! rules xvs_core::fwmark compiles, so that each packet needs two lookups.

use libbpf_rs::{MapCore, MapFlags};
use xvs_core::fwmark::{compile, MarkRule};

use crate::abi::{as_bytes as bytes, from_bytes, xvs_fwm_addr, xvs_fwm_addr_key, xvs_fwm_port_key};
use crate::error::{bpf_err, Error};
use crate::repr::be16;
use crate::Dataplane;

/// The set-id bit that tells the two generations of port sets apart: a
/// new rule set's port entries are written beside the old ones, the
/// address nodes are switched over, then the old entries go, so no packet
/// sees a node whose port set is half written.
const GEN_BIT: u32 = 1 << 31;

impl Dataplane {
    /// Replaces the classifier's rules with `rules`.
    pub fn set_mark_rules(&self, rules: &[MarkRule]) -> Result<(), Error> {
        let compiled = compile(rules).map_err(|e| Error::Invalid(e.to_string()))?;
        let old_keys: Vec<xvs_fwm_addr_key> = self
            .maps
            .fwm_addr
            .keys()
            .map(|k| from_bytes::<xvs_fwm_addr_key>(&k))
            .collect();
        let old_gen = old_keys
            .iter()
            .find_map(|k| {
                let v = self.maps.fwm_addr.lookup(bytes(k), MapFlags::ANY).ok()??;
                Some(from_bytes::<xvs_fwm_addr>(&v).set_id & GEN_BIT)
            })
            .unwrap_or(GEN_BIT);
        let gen = old_gen ^ GEN_BIT;
        let mut new_keys = Vec::with_capacity(compiled.len());
        for (idx, c) in compiled.iter().enumerate() {
            let set_id = gen | idx as u32;
            for (port, mark) in &c.ports {
                let k = xvs_fwm_port_key {
                    set_id,
                    dport: be16(*port),
                    pad: 0,
                };
                self.maps
                    .fwm_port
                    .update(bytes(&k), &mark.to_ne_bytes(), MapFlags::ANY)
                    .map_err(bpf_err("FWM_PORT update"))?;
            }
            let k = addr_key(c.node.proto.number(), c.node.net, c.node.len);
            let v = xvs_fwm_addr {
                set_id,
                any_port_mark: c.any_port_mark,
            };
            new_keys.push(k);
            self.maps
                .fwm_addr
                .update(bytes(&k), bytes(&v), MapFlags::ANY)
                .map_err(bpf_err("FWM_ADDR update"))?;
        }
        for k in old_keys
            .iter()
            .filter(|k| !new_keys.iter().any(|n| bytes(*k) == bytes(n)))
        {
            self.maps
                .fwm_addr
                .delete(bytes(k))
                .map_err(bpf_err("FWM_ADDR delete"))?;
        }
        let stale: Vec<Vec<u8>> = self
            .maps
            .fwm_port
            .keys()
            .filter(|k| from_bytes::<xvs_fwm_port_key>(k).set_id & GEN_BIT != gen)
            .collect();
        for k in stale {
            self.maps
                .fwm_port
                .delete(&k)
                .map_err(bpf_err("FWM_PORT delete"))?;
        }
        Ok(())
    }
}

/// The `FWM_ADDR` key of prefix `net/len` (host order) of protocol
/// `proto`: the protocol and pad bytes always match in full.
fn addr_key(proto: u8, net: u32, len: u8) -> xvs_fwm_addr_key {
    xvs_fwm_addr_key {
        prefixlen: 32 + u32::from(len),
        proto,
        af: crate::repr::AF_INET,
        pad: [0; 2],
        daddr: crate::repr::xaddr4(net.into()),
    }
}
