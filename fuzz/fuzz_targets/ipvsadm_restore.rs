//! `ipvsadm -R` input: every line splits and parses without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xvs_core::ipvsadm::{parse_restore_line, restore_lines};
use xvs_core::names::NoNames;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for (line, argv) in restore_lines(&text, "ipvsadm") {
        assert!(line >= 1);
        if let Ok(cmd) = parse_restore_line(&argv, &NoNames) {
            let _ = cmd.request();
        }
    }
});
