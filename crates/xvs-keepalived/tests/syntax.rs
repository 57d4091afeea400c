//! keepalived's file syntax: comments, quoting, braces, conditional lines,
//! parameters, `~SEQ`, includes with globs, and error reporting.

use std::path::{Path, PathBuf};
use xvs_keepalived::*;

fn opts(id: Option<&str>) -> Options {
    Options {
        config_id: id.map(str::to_string),
    }
}

fn parse(text: &str, id: Option<&str>) -> Config {
    parse_str_with(text, "t.conf", &opts(id)).unwrap_or_else(|e| panic!("{e}"))
}

fn errs(text: &str) -> Vec<String> {
    match parse_str_with(text, "t.conf", &opts(None)) {
        Ok(c) => panic!("parsed: {c:?}"),
        Err(e) => e.errors.iter().map(|e| e.to_string()).collect(),
    }
}

fn vips(c: &Config) -> Vec<String> {
    c.virtual_servers
        .iter()
        .map(|v| format!("{}:{}", v.addr, v.port))
        .collect()
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("xvs-keepalived-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn vs(addr: &str, port: u16) -> String {
    format!("virtual_server {addr} {port} {{\n protocol TCP\n lb_algo rr\n lb_kind NAT\n real_server 10.9.9.9 {port} {{\n }}\n}}\n")
}

#[test]
fn comments_quotes_and_braces() {
    let c = parse(
        "! comment\n# comment\n\
         virtual_server 10.0.0.1 80 { # trailing\n\
         \tprotocol TCP ! trailing\n  lb_algo rr\n lb_kind NAT\r\n\
         real_server 10.0.0.2 80 { weight 2 }\n\
         real_server 10.0.0.3 80 {\n MISC_CHECK { misc_path \"/bin/x #not-a-comment {x}\" }\n notify_up /bin/a\\#b\n }\n\
         }\n",
        None,
    );
    let vs = &c.virtual_servers[0];
    assert_eq!(vs.real_servers[0].weight, 2);
    let CheckerKind::Misc(m) = &vs.real_servers[1].checkers[0].kind else {
        panic!()
    };
    assert_eq!(m.script.args, ["/bin/x", "#not-a-comment", "{x}"]);
    assert_eq!(
        vs.real_servers[1].notify_up.as_ref().unwrap().args,
        ["/bin/a#b"]
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn brace_on_its_own_line_and_closing_on_keyword_line() {
    let c = parse("virtual_server 10.0.0.1 80\n{\n protocol TCP\n lb_algo rr\n lb_kind NAT\n real_server 10.0.0.2 80\n {\n weight 4 }\n}\n", None);
    assert_eq!(c.virtual_servers[0].real_servers[0].weight, 4);
}

#[test]
fn conditional_lines() {
    let tag = |t: &str, text: String| {
        text.lines()
            .map(|l| format!("{t} {l}\n"))
            .collect::<String>()
    };
    let text = tag("@a", vs("10.0.0.1", 80))
        + &tag("@^a", vs("10.0.0.2", 80))
        + &tag("@b", vs("10.0.0.3", 80));
    assert_eq!(vips(&parse(&text, Some("a"))), ["10.0.0.1:80"]);
    assert_eq!(
        vips(&parse(&text, Some("b"))),
        ["10.0.0.2:80", "10.0.0.3:80"]
    );
    assert_eq!(vips(&parse(&text, None)), ["10.0.0.2:80"]);
    // `@xvsd` lines are xvsd's whatever its config id (keepalived skips
    // them); `@^xvsd` lines are keepalived's only.
    let text = tag("@xvsd", vs("10.0.0.4", 80)) + &tag("@^xvsd", vs("10.0.0.5", 80));
    assert_eq!(vips(&parse(&text, Some("a"))), ["10.0.0.4:80"]);
    assert_eq!(vips(&parse(&text, None)), ["10.0.0.4:80"]);
}

#[test]
fn parameters() {
    let c = parse(
        "$NET=10.0.0\n$PORT=80\n@b $PORT=81\n$ADDR=${NET}.$LAST\n$LAST=7\n\
         virtual_server $ADDR $PORT {\n protocol TCP\n lb_algo rr\n lb_kind NAT\n real_server ${NET}.20 $PORT {\n }\n}\n",
        Some("b"),
    );
    assert_eq!(vips(&c), ["10.0.0.7:81"]);
    assert_eq!(
        c.virtual_servers[0].real_servers[0].addr.to_string(),
        "10.0.0.20"
    );
    // Undefined parameters stay as they are ($ in scripts).
    let c = parse("$X=1\nvirtual_server 10.0.0.1 80 {\n protocol TCP\n lb_algo rr\n lb_kind NAT\n real_server 10.0.0.2 80 {\n notify_up \"/bin/n $HOME\"\n }\n}\n", None);
    assert_eq!(
        c.virtual_servers[0].real_servers[0]
            .notify_up
            .as_ref()
            .unwrap()
            .args,
        ["/bin/n", "$HOME"]
    );
}

#[test]
fn multiline_definition() {
    let c = parse(
        "$RS= \\\n real_server 10.0.0.${N} 80 { \\\n weight ${N} \\\n }\n\n\
         virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_algo rr\n lb_kind NAT\n $N=2\n $RS\n $N=3\n $RS\n}\n",
        None,
    );
    let rs = &c.virtual_servers[0].real_servers;
    assert_eq!(
        rs.iter()
            .map(|r| (r.addr.to_string(), r.weight))
            .collect::<Vec<_>>(),
        [("10.0.0.2".into(), 2), ("10.0.0.3".into(), 3)]
    );
}

#[test]
fn seq() {
    let c = parse(
        "virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_algo rr\n lb_kind NAT\n ~SEQ(I, 1, 3) real_server 10.0.0.$I 80 { weight $I }\n}\n",
        None,
    );
    let rs = &c.virtual_servers[0].real_servers;
    assert_eq!(rs.iter().map(|r| r.weight).collect::<Vec<_>>(), [1, 2, 3]);
}

#[test]
fn include_with_globs_relative_to_the_including_file() {
    let d = TempDir::new("glob");
    let main = d.write("keepalived.conf", "global_defs {\n router_id X\n}\ninclude conf.d/*.conf\ninclude other/{a,b}.inc\nincluder none/*.conf\n");
    d.write("conf.d/20-b.conf", &vs("10.0.0.2", 80));
    d.write(
        "conf.d/10-a.conf",
        &format!("{}include ../sub/inner.conf\n", vs("10.0.0.1", 80)),
    );
    d.write("conf.d/.hidden.conf", &vs("10.0.0.99", 80));
    d.write("conf.d/skip.txt", &vs("10.0.0.98", 80));
    d.write("sub/inner.conf", &vs("10.0.0.3", 80));
    d.write("other/b.inc", &vs("10.0.0.5", 80));
    d.write("other/a.inc", &vs("10.0.0.4", 80));
    let c = load_with(&main, &opts(None)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        vips(&c),
        [
            "10.0.0.1:80",
            "10.0.0.3:80",
            "10.0.0.2:80",
            "10.0.0.4:80",
            "10.0.0.5:80"
        ]
    );
    assert_eq!(c.global.router_id.as_deref(), Some("X"));
    let inner = &c.virtual_servers[1].location;
    assert!(
        inner.file.ends_with("sub/inner.conf") && inner.line == 1,
        "{inner}"
    );
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0]
        .message
        .contains("none/*.conf': no config files matched"));
    assert_eq!(c.warnings[0].location.line, 6);
}

#[test]
fn include_errors_carry_the_including_line() {
    let d = TempDir::new("inc-err");
    let main = d.write(
        "k.conf",
        "include missing.conf\ninclude loop.conf\ninclude bad.conf\n",
    );
    d.write("loop.conf", "include loop.conf\n");
    d.write(
        "bad.conf",
        "virtual_server 10.0.0.1 80 {\n protocol FOO\n}\n}\n",
    );
    let e = load_with(&main, &opts(None)).unwrap_err();
    let got: Vec<(String, u32, String)> = e
        .errors
        .iter()
        .map(|e| {
            (
                Path::new(&e.location.file)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                e.location.line,
                e.message.clone(),
            )
        })
        .collect();
    assert_eq!(
        got[0],
        (
            "k.conf".into(),
            1,
            "include 'missing.conf': no such file".into()
        )
    );
    assert_eq!(got[1].0, "loop.conf");
    assert!(got[1].2.starts_with("include loop:"), "{:?}", got[1]);
    assert_eq!(
        got[2],
        (
            "bad.conf".into(),
            2,
            "protocol: unknown protocol 'FOO' (TCP|UDP|SCTP)".into()
        )
    );
    assert_eq!(got[3], ("bad.conf".into(), 4, "extra '}'".into()));
    assert_eq!(got.len(), 4, "{got:?}");
}

#[test]
fn parse_str_includes_are_relative_to_cwd() {
    let e = errs("include /nonexistent/xvs-keepalived-test.conf\n");
    assert_eq!(
        e,
        ["t.conf:1: include '/nonexistent/xvs-keepalived-test.conf': no such file"]
    );
}

#[test]
fn all_errors_of_a_file_with_line_numbers() {
    let e = errs(
        "global_defs {\n\
         lvs_timeouts tcp\n\
         }\n\
         virtual_server 10.0.0.1 99999 {\n\
         }\n\
         virtual_server 10.0.0.2 80 {\n\
          protocol TCP\n\
          lb_algo rr\n\
          quorum_up \"/bin/x\n\
          real_server 10.0.0.3 80 {\n\
           weight x\n\
         }\n\
         foo {\n\
         virtual_server 300.0.0.1 80 {\n\
         }\n",
    );
    assert_eq!(
        e,
        [
            "t.conf:2: lvs_timeouts requires at least one option (tcp|tcpfin|udp N)",
            "t.conf:4: virtual_server: invalid port '99999'",
            "t.conf:6: '{' is never closed (missing '}')",
            "t.conf:9: unterminated quote in 'quorum_up \"/bin/x'",
            "t.conf:9: quorum_up: string 'quorum_up \"/bin/x': missing terminating \"",
            "t.conf:11: weight: invalid number 'x'",
            "t.conf:13: '{' is never closed (missing '}')",
        ]
    );
}

#[test]
fn stray_braces() {
    assert_eq!(
        errs("}\n{\n}\n"),
        [
            "t.conf:1: extra '}'",
            "t.conf:2: unexpected '{' (no keyword before it)"
        ]
    );
}
