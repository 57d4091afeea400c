//! rtnetlink answers from the kernel (routes, links, neighbours, qdiscs,
//! tc filters, errors, dump ends): collecting and reading them never
//! panics, whatever the lengths, sequence numbers and attributes say.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = xvs_dataplane::rtnl_fuzz::read_rtnetlink(data);
});
