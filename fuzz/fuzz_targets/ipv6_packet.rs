//! IPv6 packets from the network: the checked views, the walk over
//! extension headers (the kernel's `ipv6_find_hdr` as IPVS calls it) and
//! ICMPv6 parsing never panic; a fixed header read back and written again
//! is the same bytes; the walk ends inside its bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xvs_wire::ipv6::{find_upper, HEADER_LEN, MAX_EXT_HDRS};
use xvs_wire::{Icmpv6Packet, Icmpv6Repr, Ipv6Packet, Ipv6Repr};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Ipv6Packet::new_checked(data) else {
        return;
    };
    if let Ok(r) = Ipv6Repr::parse(&p) {
        let mut again = data[..HEADER_LEN + p.payload().len()].to_vec();
        r.emit(&mut again).expect("emit of a parsed header");
        assert_eq!(&again[..HEADER_LEN], &data[..HEADER_LEN], "header round trip");
    }
    let payload = p.payload();
    if let Ok(u) = p.upper() {
        // each header is at least 8 bytes, and at most MAX_EXT_HDRS are
        // walked; a later fragment's offset is its fragment header's
        assert!(u.offset <= MAX_EXT_HDRS * 2048 + 8, "{u:?}");
        assert!(u.frag_offset == 0 || u.fragment, "{u:?}");
        assert_eq!(find_upper(p.next_header(), payload), Ok(u));
        if u.protocol == 58 && u.frag_offset == 0 {
            if let Some(l4) = payload.get(u.offset..) {
                if let Ok(m) = Icmpv6Packet::new_checked(l4) {
                    let _ = Icmpv6Repr::parse(&m, p.src_addr(), p.dst_addr());
                    let _ = m.quoted().map(|q| q.upper());
                }
            }
        }
    }
});
