//! The ipvsadm grammar: any argument vector parses to a command or a
//! ParseError, never a panic; what parses turns into a request that
//! survives the JSON control API unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xvs_core::api::Request;
use xvs_core::ipvsadm::parse_with;
use xvs_core::names::NoNames;

fuzz_target!(|data: &[u8]| {
    // One argument per line, as a shell would hand them over.
    let text = String::from_utf8_lossy(data);
    let mut argv = vec!["ipvsadm".to_string()];
    argv.extend(text.split('\n').map(str::to_string));
    if let Ok(cmd) = parse_with(&argv, &NoNames) {
        if let Some(req) = cmd.request() {
            let json = serde_json::to_vec(&req).expect("a request serializes");
            let back: Request = serde_json::from_slice(&json).expect("a request reads back");
            assert_eq!(req, back, "request changed through JSON");
        }
    }
});
