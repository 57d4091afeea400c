//! man/xvsd.8 renders without warnings and documents every long option of
//! the built `xvsd --help` (aliases included), so an option added to the
//! command line fails this test until the page names it.

#[allow(dead_code)]
#[path = "../../../man/check.rs"]
mod check;

#[test]
fn xvsd_page_renders_cleanly() {
    let (path, _) = check::page("xvsd.8");
    check::renders_cleanly(&path);
}

#[test]
fn xvsd_page_documents_every_option() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xvsd"))
        .arg("--help")
        .output()
        .expect("running xvsd --help");
    assert!(out.status.success(), "xvsd --help: {}", out.status);
    let help = String::from_utf8_lossy(&out.stdout);
    let wanted = check::long_options(&help);
    for o in ["socket", "config", "use-file", "detach", "help"] {
        assert!(
            wanted.contains(o),
            "--{o} not found in xvsd --help:\n{help}"
        );
    }
    let (_, source) = check::page("xvsd.8");
    check::assert_documents("xvsd.8", &source, &wanted);
}
