//! `xvsd --test --config FILE` (no root): keepalived's own sample
//! configurations (read in place from `shared/keepalived-samples/`) pass,
//! or fail with the documented clear rejection; good and bad files give
//! the right exit codes and `file:line:` lines.

use std::path::PathBuf;
use std::process::Command;

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/keepalived-samples")
        .join(name)
}

/// Exit code, stdout, stderr of `xvsd --test --config FILE [-i ID]`.
fn check(file: &std::path::Path, id: Option<&str>) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xvsd"));
    c.arg("--test").arg("--config").arg(file);
    if let Some(id) = id {
        c.args(["--config-id", id]);
    }
    let out = c.output().expect("run xvsd --test");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The error lines (not warnings) of stderr, with the sample directory
/// removed from file names.
fn errors(stderr: &str) -> Vec<String> {
    let dir = sample("").display().to_string();
    stderr
        .lines()
        .filter(|l| !l.contains(": warning: ") && !l.contains("configuration refused"))
        .map(|l| l.replace(&dir, ""))
        .collect()
}

const SUPPORTED: &str =
    "(xvs runs TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK, UDP_CHECK and DNS_CHECK)";

#[test]
fn keepalived_samples_pass_or_are_clearly_refused() {
    let ok = [
        ("keepalived.conf.HTTP_GET.port", 1, 1),
        ("keepalived.conf.SSL_GET", 2, 2),
        ("keepalived.conf.UDP_CHECK", 1, 1),
        ("keepalived.conf.conditional_conf", 0, 0),
        ("keepalived.conf.fwmark", 1, 2),
        ("keepalived.conf.inhibit", 1, 1),
        ("keepalived.conf.misc_check", 1, 1),
        ("keepalived.conf.misc_check_arg", 1, 1),
        ("keepalived.conf.quorum", 1, 10),
        ("keepalived.conf.sample", 1, 1),
        ("keepalived.conf.status_code", 1, 1),
        ("keepalived.conf.virtual_server_group", 13, 26),
        ("keepalived.conf.virtualhost", 1, 1),
        ("keepalived.conf.vrrp.lvs_syncd", 1, 1),
    ];
    let refused: [(&str, Vec<String>); 3] = [
        (
            "keepalived.conf.IPv6",
            vec![
                // Read as keepalived reads it; the table refuses IPv6 until
                // the data plane forwards it.
                "keepalived.conf.IPv6:13: virtual server TCP [ae00::1]:80: IPv6 is not supported by xvs yet".into(),
                format!("keepalived.conf.IPv6:24: SMTP_CHECK is not supported by xvs {SUPPORTED}"),
            ],
        ),
        (
            "keepalived.conf.PING_CHECK",
            vec![format!("keepalived.conf.PING_CHECK:23: PING_CHECK is not supported by xvs {SUPPORTED}")],
        ),
        (
            "keepalived.conf.SMTP_CHECK",
            [39, 58, 89]
                .iter()
                .map(|l| format!("keepalived.conf.SMTP_CHECK:{l}: SMTP_CHECK is not supported by xvs {SUPPORTED}"))
                .collect(),
        ),
    ];
    let mut seen: Vec<String> = ok.iter().map(|o| o.0.to_string()).collect();
    seen.extend(refused.iter().map(|r| r.0.to_string()));
    seen.sort();
    let mut all: Vec<String> = std::fs::read_dir(sample(""))
        .expect("the keepalived samples beside the repository")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("keepalived.conf"))
        .collect();
    all.sort();
    assert_eq!(all, seen, "a sample was added or removed: cover it here");
    for (name, vs, rs) in ok {
        let (code, out, err) = check(&sample(name), None);
        assert_eq!(code, 0, "{name}: {out}{err}");
        assert!(
            out.contains(&format!(
                "configuration OK: {vs} virtual server(s), {rs} real server(s)"
            )),
            "{name}: {out}"
        );
        assert!(errors(&err).is_empty(), "{name}: {err}");
    }
    for (name, want) in refused {
        let (code, out, err) = check(&sample(name), None);
        assert_eq!(code, 1, "{name}: {out}{err}");
        assert_eq!(errors(&err), want, "{name}");
        assert!(err.contains("configuration refused"), "{name}: {err}");
    }
}

#[test]
fn warnings_are_printed_as_warnings() {
    let (code, _, err) = check(&sample("keepalived.conf.sample"), None);
    assert_eq!(code, 0);
    assert!(
        err.contains("keepalived.conf.sample:13: warning: 'vrrp_instance' skipped: VRRP is left to keepalived"),
        "{err}"
    );
    // '-i high' reads the '@high' lines of conditional_conf.
    let (code, _, err) = check(&sample("keepalived.conf.conditional_conf"), Some("high"));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(":3: warning: 'net_namespace' skipped"),
        "{err}"
    );
}

#[test]
fn good_and_bad_files() {
    let dir = std::env::temp_dir().join(format!("xvsd-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.conf");
    std::fs::write(
        &good,
        "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  lvs_sched rr\n  sorry_server 10.0.2.1 8080\n\
         \x20 real_server 10.0.1.1 80 {\n    HTTP_GET {\n      url {\n        path /\n        status_code 200\n      }\n\
         \x20     connect_timeout 1\n    }\n  }\n}\n",
    )
    .unwrap();
    let (code, out, err) = check(&good, None);
    assert_eq!(code, 0, "{out}{err}");
    let bad = dir.join("bad.conf");
    std::fs::write(
        &bad,
        "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  lvs_sched rr\n  lvs_method TUN type gre\n\
         \x20 real_server 10.0.1.1 80 {\n    BFD_CHECK {\n    }\n  }\n\
         \x20 real_server 10.0.1.2 80 {\n    HTTP_GET {\n      url {\n        path /\n        regex \"ok\"\n      }\n    }\n  }\n}\n",
    )
    .unwrap();
    let (code, _, err) = check(&bad, None);
    assert_eq!(code, 1, "{err}");
    let f = bad.display().to_string();
    let got: Vec<String> = err
        .lines()
        .filter(|l| !l.contains("configuration refused"))
        .map(String::from)
        .collect();
    assert_eq!(
        got,
        [
            format!("{f}:5: real server 10.0.1.1:80: tunnel type gre is not supported by xvs yet (ipip and gue are)"),
            format!("{f}:6: BFD_CHECK is not supported by xvs {SUPPORTED}"),
            format!("{f}:9: real server 10.0.1.2:80: tunnel type gre is not supported by xvs yet (ipip and gue are)"),
            format!("{f}:10: HTTP_GET: url /: regex is not supported by xvs (use status_code or digest)"),
        ]
    );
    let (code, _, err) = check(&dir.join("missing.conf"), None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("missing.conf"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
