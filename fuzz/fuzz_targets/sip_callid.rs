//! SIP messages from the network (`--pe sip`): the Call-ID search never
//! panics, and what it returns is what IPVS would keep: 1 to 255 word
//! bytes, at most one `@` between two of them, inside the payload and
//! followed directly by the end of a line; and the one-pass scanner (the
//! data plane's form of the search) finds the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xvs_wire::sip::{call_id, call_id_scanned, is_word, CALLID_MAX};

fuzz_target!(|data: &[u8]| {
    let found = call_id(data);
    assert_eq!(found, call_id_scanned(data), "the scanner differs");
    let Ok(id) = found else { return };
    assert!(
        !id.is_empty() && id.len() <= CALLID_MAX,
        "length {}",
        id.len()
    );
    let start = id.as_ptr() as usize - data.as_ptr() as usize;
    let end = start + id.len();
    assert!(
        matches!(data.get(end), Some(b'\r' | b'\n')),
        "not at a line end"
    );
    assert!(start > 0, "the first line is never a header");
    let ats = id.iter().filter(|&&c| c == b'@').count();
    assert!(ats <= 1, "{ats} @s");
    assert!(id.first() != Some(&b'@') && id.last() != Some(&b'@'));
    assert!(
        id.iter().all(|&c| c == b'@' || is_word(c)),
        "a non-word byte"
    );
});
