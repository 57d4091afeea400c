//! keepalived's notify FIFO lines: any line parses or is ignored.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        let _ = xvs_keepalived::parse_notify_line(line);
    }
});
