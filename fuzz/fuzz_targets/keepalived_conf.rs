//! keepalived.conf with includes: the input is a main file and up to three
//! included files (separated by a line `#%%`), written to a private
//! directory; reading them ends with a config or file:line errors, never a
//! panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;
use xvs_keepalived::{load_with, Options};

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("xvs-fuzz-kconf-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("fuzz scratch directory");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let dir = dir();
    let mut parts = text.splitn(4, "\n#%%\n");
    let main = parts.next().unwrap_or("");
    std::fs::write(dir.join("keepalived.conf"), main).expect("write main file");
    for i in 0..3 {
        let inc = parts.next().unwrap_or("");
        std::fs::write(dir.join(format!("inc{i}.conf")), inc).expect("write include");
    }
    let opts = Options {
        config_id: Some("lb1".to_string()),
    };
    match load_with(&dir.join("keepalived.conf"), &opts) {
        Ok(_) => {}
        Err(errs) => assert!(!errs.to_string().is_empty(), "an error names what is wrong"),
    }
});
