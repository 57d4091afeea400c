//! The shared kernel/user-space types, exactly as generated from
//! `bpf/xvs.h`. Fields typed `__be32`/`__be16` in C hold network-order
//! bytes; use [`be32`](crate::be32), [`be16`](crate::be16),
//! [`ip_of`](crate::ip_of) and [`port_of`](crate::port_of) to convert.

pub use crate::skel::expiry::types::xvs_expiry_cfg;
pub use crate::skel::xvs::types::{
    xvs_abi_version, xvs_addr, xvs_conn, xvs_conn_flags, xvs_conn_key, xvs_counter, xvs_dest,
    xvs_dest_conns, xvs_dest_flags, xvs_dest_nh, xvs_dest_rt_flags, xvs_expiry_kind,
    xvs_expiry_rec, xvs_feat, xvs_fwd, xvs_fwm_addr, xvs_fwm_addr_key, xvs_fwm_port_key,
    xvs_iface_flags, xvs_lblc, xvs_lblc_key, xvs_limit, xvs_nh_cfg, xvs_nh_state, xvs_ring_key,
    xvs_sched, xvs_sip_key, xvs_sip_tmpl, xvs_state, xvs_stats, xvs_svc, xvs_svc_dests,
    xvs_svc_key, xvs_tmpl, xvs_tmpl_flags, xvs_tmpl_key, xvs_tun_flags, xvs_tun_type,
};

use std::mem::size_of;

/// Plain old data shared with the kernel: the generated types (repr(C)
/// with explicit padding) and the integer keys. Unsafe to implement:
/// [`as_bytes`] reads every byte of a value, and values are also made
/// from bytes the kernel hands back.
///
/// # Safety
/// Every byte of every value must be initialised (no padding holes),
/// and every bit pattern must be a valid value.
pub unsafe trait Pod: Copy + Default {}
unsafe impl Pod for xvs_svc_key {}
unsafe impl Pod for xvs_fwm_addr_key {}
unsafe impl Pod for xvs_fwm_addr {}
unsafe impl Pod for xvs_fwm_port_key {}
unsafe impl Pod for xvs_svc {}
unsafe impl Pod for xvs_ring_key {}
unsafe impl Pod for xvs_dest {}
unsafe impl Pod for xvs_dest_nh {}
unsafe impl Pod for xvs_nh_cfg {}
unsafe impl Pod for xvs_conn_key {}
unsafe impl Pod for xvs_conn {}
unsafe impl Pod for xvs_expiry_cfg {}
unsafe impl Pod for xvs_expiry_rec {}
unsafe impl Pod for xvs_stats {}
unsafe impl Pod for xvs_tmpl_key {}
unsafe impl Pod for xvs_tmpl {}
unsafe impl Pod for xvs_sip_key {}
unsafe impl Pod for xvs_sip_tmpl {}
unsafe impl Pod for xvs_lblc_key {}
unsafe impl Pod for xvs_lblc {}
unsafe impl Pod for u32 {}
unsafe impl Pod for u64 {}

impl xvs_conn_key {
    /// The `CONN_MAP` key of a packet `saddr:sport -> daddr:dport`
    /// (`proto`: 6 or 17), fields in network order.
    pub fn new(
        proto: u8,
        saddr: std::net::Ipv4Addr,
        sport: u16,
        daddr: std::net::Ipv4Addr,
        dport: u16,
    ) -> Self {
        xvs_conn_key {
            saddr: crate::repr::xaddr4(saddr),
            daddr: crate::repr::xaddr4(daddr),
            sport: sport.to_be(),
            dport: dport.to_be(),
            proto,
            af: crate::repr::AF_INET,
            ..Default::default()
        }
    }
}

/// The bytes of a shared value, as map keys and values carry them.
pub fn as_bytes<T: Pod>(v: &T) -> &[u8] {
    // SAFETY: Pod says every byte is initialised.
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, size_of::<T>()) }
}

/// A value of `T` from the bytes of a map key or value (the kernel hands
/// out at least `size_of::<T>()` bytes; a shorter slice leaves the rest
/// at its default).
pub(crate) fn from_bytes<T: Pod>(b: &[u8]) -> T {
    let mut v = T::default();
    let n = b.len().min(size_of::<T>());
    // SAFETY: copies at most size_of::<T>() bytes into a Pod value.
    unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), &mut v as *mut T as *mut u8, n) };
    v
}

// C and Rust cannot drift: the types above come from the object's BTF, and
// these pin their sizes (and therefore the explicit padding) down.
const _: () = assert!(size_of::<xvs_svc_key>() == 20);
const _: () = assert!(size_of::<xvs_fwm_addr_key>() == 24);
const _: () = assert!(size_of::<xvs_fwm_addr>() == 8);
const _: () = assert!(size_of::<xvs_fwm_port_key>() == 8);
const _: () = assert!(
    xvs_limit::XVS_LIM_FWM_NODES_MAX.0 as usize == xvs_core::fwmark::MAX_NODES
        && xvs_limit::XVS_LIM_FWM_PORTS_MAX.0 as usize == xvs_core::fwmark::MAX_PORT_ENTRIES
);
const _: () = assert!(size_of::<xvs_svc>() == 44);
const _: () = assert!(size_of::<xvs_ring_key>() == 8);
const _: () = assert!(size_of::<xvs_dest>() == 44);
const _: () = assert!(size_of::<xvs_dest_nh>() == 40);
const _: () =
    assert!(size_of::<xvs_svc_dests>() == 4 + 4 * xvs_limit::XVS_LIM_SVC_DESTS_MAX.0 as usize);
const _: () = assert!(size_of::<xvs_tmpl_key>() == 36);
const _: () = assert!(size_of::<xvs_tmpl>() == 48);
const _: () = assert!(size_of::<xvs_sip_key>() == 48);
const _: () = assert!(
    size_of::<xvs_sip_tmpl>() == 48 + xvs_limit::XVS_LIM_SIP_CALLID_MAX.0 as usize + 1
        && xvs_limit::XVS_LIM_SIP_CALLID_MAX.0 as usize == xvs_core::sched::persist::PE_DATA_MAX
);
const _: () = assert!(size_of::<xvs_lblc_key>() == 20);
const _: () =
    assert!(size_of::<xvs_lblc>() == 24 + 4 * xvs_limit::XVS_LIM_LBLCR_SET_MAX.0 as usize);
const _: () = assert!(size_of::<xvs_conn_key>() == 40);
const _: () = assert!(size_of::<xvs_conn>() == 64);
const _: () = assert!(size_of::<xvs_stats>() == 40);
const _: () = assert!(size_of::<xvs_dest_conns>() == 16);
const _: () = assert!(size_of::<xvs_nh_cfg>() == 16);
const _: () = assert!(size_of::<xvs_expiry_rec>() == 48);
const _: () = assert!(size_of::<xvs_expiry_cfg>() == 8 * xvs_state::XVS_S_LAST.0 as usize + 32);
