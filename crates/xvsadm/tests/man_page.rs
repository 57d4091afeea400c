//! man/xvsadm.8 renders without warnings and documents every long option
//! xvsadm takes: ipvsadm's, read from the popt table the parser uses
//! (`xvs_core::ipvsadm::long_options`), and xvs's own, read from the
//! string literals of the sources that parse them (the mark commands, the
//! importer, `--socket`), so that an option added in either place fails
//! this test until the page names it.

#[allow(dead_code)]
#[path = "../../../man/check.rs"]
mod check;

use std::collections::BTreeSet;
use std::path::Path;

#[test]
fn xvsadm_page_renders_cleanly() {
    let (path, _) = check::page("xvsadm.8");
    check::renders_cleanly(&path);
}

/// Every `"--name"` string literal outside the `#[cfg(test)]` part of the
/// `.rs` files under `dir` (tests spell made-up options such as `--bogus`).
fn option_literals(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let mut rest = code;
            while let Some(i) = rest.find("\"--") {
                let after = &rest[i + 3..];
                let n = after
                    .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
                    .unwrap_or(after.len());
                // Only a whole literal: `"--socket="` is a prefix test.
                if n > 0 && after[n..].starts_with('"') {
                    out.insert(after[..n].to_string());
                }
                rest = &after[n..];
            }
        }
    }
    out
}

#[test]
fn xvsadm_page_documents_every_option() {
    let (_, source) = check::page("xvsadm.8");
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut wanted: BTreeSet<String> = xvs_core::ipvsadm::long_options()
        .map(str::to_string)
        .collect();
    assert!(wanted.len() > 40, "the popt table looks empty: {wanted:?}");
    let own = option_literals(&crates.join("xvsadm/src"));
    assert!(own.contains("socket"), "no --socket found in xvsadm/src");
    wanted.extend(own);
    wanted.extend(option_literals(&crates.join("xvs-core/src/ipvsadm")));
    check::assert_documents("xvsadm.8", &source, &wanted);
}

#[test]
fn the_checker_finds_a_missing_option() {
    // The test above is only worth something if a missing option fails.
    let wanted: BTreeSet<String> = ["weight", "no-such-option"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let r = std::panic::catch_unwind(|| {
        check::assert_documents("x.8", ".B \\-w, \\-\\-weight\n", &wanted)
    });
    let msg = r.expect_err("an undocumented option passed");
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("--no-such-option") && !msg.contains("--weight"),
        "{msg}"
    );
}
