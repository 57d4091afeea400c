//! What the man page tests of xvsadm, xvsd and xvs-realserver share
//! (each includes this file with `#[path]`, so that every crate checks the
//! page of its own binary): rendering a page with groff and man and
//! failing on any warning, and the long options a page or a help text
//! names.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The page `name` (`xvsadm.8`) in the repository's `man/` and its source.
pub fn page(name: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../man")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    (path, text)
}

/// Renders `page` as `man` would, with every groff warning on, and
/// panics on a failure or any output on stderr. A tool that is not
/// installed is skipped with a `skipped:` line (CI installs groff-base and
/// man-db, xtask/src/deps.rs).
pub fn renders_cleanly(page: &Path) {
    // groff alone: -ww turns every warning on, -z drops the output, -t
    // runs tbl; -Tutf8 formats for a terminal, as man does, so that
    // line-breaking problems show too.
    let groff = ["-man", "-Tutf8", "-ww", "-z", "-t"];
    run_quiet("groff", &groff, page, false);
    // man -l: what an operator runs on the file (man-db's own checks,
    // preprocessors from the page's header), plain text on a pipe.
    run_quiet("man", &["--warnings", "-l"], page, true);
}

fn run_quiet(tool: &str, args: &[&str], page: &Path, wants_output: bool) {
    let out = Command::new(tool)
        .args(args)
        .arg(page)
        // A fixed locale and width: the same output on every machine.
        .env("LC_ALL", "C")
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("skipped: {tool} is not installed ({e})");
            return;
        }
        Err(e) => panic!("running {tool}: {e}"),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{tool} {} {}: {}\n{stderr}",
        args.join(" "),
        page.display(),
        out.status
    );
    if wants_output {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("NAME") && text.contains("SYNOPSIS"),
            "{tool} printed no page for {}:\n{text}",
            page.display()
        );
    }
}

/// The page's source with roff's escaped hyphens (`\-`) and font changes
/// (`\fB`, `\fI`, `\fP`, `\fR`) taken out, so that `\fB\-\-weight\fP`
/// reads `--weight`.
pub fn plain(source: &str) -> String {
    let mut s = source.replace("\\-", "-");
    for f in ["\\fB", "\\fI", "\\fP", "\\fR"] {
        s = s.replace(f, "");
    }
    s
}

/// Every `--name` in `text` (letters, digits and inner hyphens), without
/// the dashes.
pub fn long_options(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("--") {
        let after = &rest[i + 2..];
        let n = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(after.len());
        let name = after[..n].trim_end_matches('-');
        // `--` alone, or the start of a rule such as `----`, is no option.
        if name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            out.insert(name.to_string());
        }
        rest = &after[n..];
    }
    out
}

/// The options of `wanted` that `page_source` does not name; panics with
/// the list when there are any.
pub fn assert_documents(page_name: &str, page_source: &str, wanted: &BTreeSet<String>) {
    let named = long_options(&plain(page_source));
    let missing: Vec<&String> = wanted.iter().filter(|o| !named.contains(*o)).collect();
    assert!(
        missing.is_empty(),
        "man/{page_name} does not document: {}",
        missing
            .iter()
            .map(|o| format!("--{o}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
