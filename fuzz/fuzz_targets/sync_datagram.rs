//! Connection-sync datagrams from the network: decoding never panics, and
//! what decodes encodes (as protocol v1) and decodes back to the same
//! connections, less the `HASHED` flag, which a sender never puts on the
//! wire (`ip_vs_sync_conn` clears it; so does our encoder).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xvs_core::sync::{conn_flags, decode, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = decode(data) else { return };
    let Ok(datagrams) = encode(msg.header.syncid, 1500, &msg.conns) else {
        return;
    };
    let mut again = Vec::new();
    for d in &datagrams {
        let m = decode(d).expect("our own datagram decodes");
        assert!(
            m.skipped.is_empty(),
            "our own entry skipped: {:?}",
            m.skipped
        );
        again.extend(m.conns);
    }
    let mut sent = msg.conns;
    for c in &mut sent {
        c.flags &= !conn_flags::HASHED;
    }
    assert_eq!(sent, again, "connections changed through encode/decode");
});
