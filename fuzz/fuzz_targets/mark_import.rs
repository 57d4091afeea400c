//! `xvsadm --import-marks` input (iptables-save text): never a panic, and
//! what it translates survives `-S`/`-R`: the `--add-mark` lines it
//! prints parse back into the same rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xvs_core::fwmark::import::from_iptables_save;
use xvs_core::ipvsadm::{parse_restore_line, restore_lines, save_marks, Command};
use xvs_core::names::NoNames;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(got) = from_iptables_save(&text) else {
        return;
    };
    let saved = save_marks(&got.rules);
    let mut back = Vec::new();
    for (_, argv) in restore_lines(&saved, "xvsadm") {
        match parse_restore_line(&argv, &NoNames) {
            Ok(Command::AddMarks(rules)) => back.extend(rules),
            other => panic!("{argv:?} did not parse back: {other:?}"),
        }
    }
    assert_eq!(back, got.rules);
});
