//! `global_defs`' `lvs_sync_daemon`, `notify_fifo`, `vrrp_notify_fifo`, and
//! what is kept of the `vrrp_instance` blocks, as keepalived 2.2 reads them
//! (`core/global_parser.c`, `vrrp/vrrp_parser.c`, `vrrp/vrrp.c`'s
//! `vrrp_complete_init`, `core/global_data.c`).

use std::net::IpAddr;
use std::path::PathBuf;
use xvs_keepalived::*;

fn parse(text: &str) -> Config {
    parse_str_with(text, "t.conf", &Options::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn errors(text: &str) -> Vec<String> {
    match parse_str_with(text, "t.conf", &Options::default()) {
        Ok(c) => panic!("parsed: {c:?}"),
        Err(e) => e.errors.iter().map(|e| e.to_string()).collect(),
    }
}

fn warnings(c: &Config) -> Vec<String> {
    c.warnings.iter().map(|w| w.to_string()).collect()
}

/// `global_defs` with `lines`, then instances VI_1 (VRID 51) and VI_2 (52).
fn with_instances(lines: &str) -> String {
    format!(
        "global_defs {{\n{lines}\n}}\n\
         vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 51\n}}\n\
         vrrp_instance VI_2 {{\n interface eth0\n virtual_router_id 52\n}}\n"
    )
}

fn syncd(lines: &str) -> LvsSyncDaemon {
    let c = parse(&with_instances(lines));
    c.global.lvs_sync_daemon.expect("lvs_sync_daemon")
}

/// (interface, instance, syncid)
fn basics(d: &LvsSyncDaemon) -> (&str, Option<&str>, u8) {
    (d.interface.as_str(), d.vrrp_instance.as_deref(), d.syncid)
}

const SKIPPED: &str =
    "warning: 'vrrp_instance' skipped: VRRP is left to keepalived (run it with --vrrp)";

#[test]
fn lvs_sync_daemon_every_option() {
    let c = parse(&with_instances(
        " lvs_sync_daemon eth1 inst VI_2 id 7 maxlen 1472 port 8849 ttl 2 group 239.1.2.3",
    ));
    let d = c.global.lvs_sync_daemon.as_ref().unwrap();
    assert_eq!(
        d,
        &LvsSyncDaemon {
            location: Location::new("t.conf", 2),
            interface: "eth1".into(),
            vrrp_instance: Some("VI_2".into()),
            syncid: 7,
            maxlen: Some(1472),
            port: Some(8849),
            ttl: Some(2),
            group: Some("239.1.2.3".parse().unwrap()),
        }
    );
    // Only the two skipped blocks are reported: the keys are used.
    assert_eq!(
        warnings(&c),
        [
            format!("t.conf:4: {SKIPPED}"),
            format!("t.conf:8: {SKIPPED}")
        ]
    );
    // Limits: maxlen 65535 - 20 - 8, ttl and port up to their types' maximum.
    let d = syncd(" lvs_sync_daemon eth1 maxlen 65507 port 65535 ttl 255 id 255");
    assert_eq!(
        (d.maxlen, d.port, d.ttl, d.syncid),
        (Some(65507), Some(65535), Some(255), 255)
    );
    assert_eq!(syncd(" lvs_sync_daemon eth1 maxlen 1 id 0").maxlen, Some(1));
}

#[test]
fn lvs_sync_daemon_sync_id_defaults() {
    // Named instance without id: its VRID.
    assert_eq!(
        basics(&syncd(" lvs_sync_daemon eth1 inst VI_1")),
        ("eth1", Some("VI_1"), 51)
    );
    // `inst` may be left out (the older form), also before other options.
    assert_eq!(
        basics(&syncd(" lvs_sync_daemon eth1 VI_2")),
        ("eth1", Some("VI_2"), 52)
    );
    assert_eq!(
        basics(&syncd(" lvs_sync_daemon eth1 VI_2 port 9000")),
        ("eth1", Some("VI_2"), 52)
    );
    // An explicit id wins, 0 included.
    assert_eq!(
        basics(&syncd(" lvs_sync_daemon eth1 VI_2 id 0")),
        ("eth1", Some("VI_2"), 0)
    );
    // No instance: both daemons run, sync id `id` or 0.
    assert_eq!(basics(&syncd(" lvs_sync_daemon eth1")), ("eth1", None, 0));
    assert_eq!(
        basics(&syncd(" lvs_sync_daemon eth1 id 9")),
        ("eth1", None, 9)
    );
    // The instance may come after global_defs (looked up once all is read),
    // and a named instance without virtual_router_id is fine with an id.
    let c = parse(
        "global_defs {\n lvs_sync_daemon eth1 VI_9 id 3\n}\nvrrp_instance VI_9 {\n interface eth0\n}\n",
    );
    let d = c.global.lvs_sync_daemon.unwrap();
    assert_eq!(basics(&d), ("eth1", Some("VI_9"), 3));
}

#[test]
fn lvs_sync_daemon_positional_sync_id_warns() {
    let c = parse(&with_instances(" lvs_sync_daemon eth1 VI_1 12"));
    assert_eq!(
        basics(c.global.lvs_sync_daemon.as_ref().unwrap()),
        ("eth1", Some("VI_1"), 12)
    );
    assert_eq!(
        warnings(&c)[0],
        "t.conf:2: warning: lvs_sync_daemon: write the sync id as 'id 12' (keepalived: Please use keyword \"id\" before lvs_sync_daemon SYNCID)"
    );
}

#[test]
fn lvs_sync_daemon_ipv6_group_and_suffix() {
    assert_eq!(
        syncd(" lvs_sync_daemon eth1 group ff02::1:2").group,
        Some("ff02::1:2".parse::<IpAddr>().unwrap())
    );
    // inet_stosockaddr drops a '/mask' or '-range' suffix.
    assert_eq!(
        syncd(" lvs_sync_daemon eth1 group 224.0.0.81/32").group,
        Some("224.0.0.81".parse::<IpAddr>().unwrap())
    );
}

#[test]
fn lvs_sync_daemon_errors() {
    let cases: &[(&str, &str)] = &[
        ("lvs_sync_daemon", "lvs_sync_daemon: missing interface"),
        (
            "lvs_sync_daemon eth0123456789abc VI_1",
            "lvs_sync_daemon: interface name 'eth0123456789abc' too long (at most 15 characters)",
        ),
        (
            "lvs_sync_daemon eth1 inst",
            "lvs_sync_daemon: missing VRRP instance name after 'inst'",
        ),
        (
            "lvs_sync_daemon eth1 VI_1 inst VI_2",
            "lvs_sync_daemon: VRRP instance already specified as VI_1 - 'VI_2' ignored",
        ),
        (
            "lvs_sync_daemon eth1 inst VI_1 inst VI_2",
            "lvs_sync_daemon: VRRP instance already specified as VI_1 - 'VI_2' ignored",
        ),
        (
            "lvs_sync_daemon eth1 VI_1 id",
            "lvs_sync_daemon: missing value after 'id'",
        ),
        (
            "lvs_sync_daemon eth1 VI_1 id 256",
            "lvs_sync_daemon: invalid id '256' (0..255)",
        ),
        (
            "lvs_sync_daemon eth1 VI_1 id -1",
            "lvs_sync_daemon: invalid id '-1' (0..255)",
        ),
        (
            "lvs_sync_daemon eth1 VI_1 256",
            "lvs_sync_daemon: invalid sync id '256' (0..255)",
        ),
        (
            "lvs_sync_daemon eth1 maxlen 0",
            "lvs_sync_daemon: invalid maxlen '0' (1..65507)",
        ),
        (
            "lvs_sync_daemon eth1 maxlen 65508",
            "lvs_sync_daemon: invalid maxlen '65508' (1..65507)",
        ),
        (
            "lvs_sync_daemon eth1 maxlen",
            "lvs_sync_daemon: missing value after 'maxlen'",
        ),
        (
            "lvs_sync_daemon eth1 port 0",
            "lvs_sync_daemon: invalid port '0' (1..65535)",
        ),
        (
            "lvs_sync_daemon eth1 port 65536",
            "lvs_sync_daemon: invalid port '65536' (1..65535)",
        ),
        (
            "lvs_sync_daemon eth1 ttl 0",
            "lvs_sync_daemon: invalid ttl '0' (1..255)",
        ),
        (
            "lvs_sync_daemon eth1 ttl 256",
            "lvs_sync_daemon: invalid ttl '256' (1..255)",
        ),
        (
            "lvs_sync_daemon eth1 group 10.0.0.1",
            "lvs_sync_daemon: group address 10.0.0.1 is not multicast",
        ),
        (
            "lvs_sync_daemon eth1 group fe80::1",
            "lvs_sync_daemon: group address fe80::1 is not multicast",
        ),
        (
            "lvs_sync_daemon eth1 group 239.0.0",
            "lvs_sync_daemon: invalid group address '239.0.0'",
        ),
        (
            "lvs_sync_daemon eth1 VI_1 5 extra",
            "lvs_sync_daemon: unknown option 'extra' (inst|id|maxlen|port|ttl|group)",
        ),
        (
            "lvs_sync_daemon eth1 id 5 VI_1",
            "lvs_sync_daemon: unknown option 'VI_1' (inst|id|maxlen|port|ttl|group)",
        ),
        (
            "lvs_sync_daemon eth1 inst VI_7",
            "lvs_sync_daemon: no vrrp_instance VI_7 is defined (keepalived then runs no sync daemon)",
        ),
    ];
    for (line, want) in cases {
        assert_eq!(
            errors(&with_instances(&format!(" {line}"))),
            [format!("t.conf:2: {want}")],
            "{line}"
        );
    }
    // A second lvs_sync_daemon is ignored by keepalived: an error.
    assert_eq!(
        errors(&with_instances(
            " lvs_sync_daemon eth1 VI_1\n lvs_sync_daemon eth2 VI_2"
        )),
        ["t.conf:3: lvs_sync_daemon already specified at t.conf:2 - keepalived ignores this one"]
    );
    // No id and the instance has no (valid) VRID to take it from.
    assert_eq!(
        errors(
            "global_defs {\n lvs_sync_daemon eth1 VI_9\n}\nvrrp_instance VI_9 {\n virtual_router_id 0\n}\n"
        ),
        ["t.conf:2: lvs_sync_daemon: no id, and vrrp_instance VI_9 at t.conf:4 has no valid virtual_router_id to take it from"]
    );
    // Every error of the line is reported.
    assert_eq!(
        errors(&with_instances(" lvs_sync_daemon eth1 port x ttl y")),
        [
            "t.conf:2: lvs_sync_daemon: invalid port 'x' (1..65535)",
            "t.conf:2: lvs_sync_daemon: invalid ttl 'y' (1..255)",
        ]
    );
}

#[test]
fn deprecated_lvs_sync_daemon_interface() {
    let c =
        parse("vrrp_instance VI_1 {\n virtual_router_id 51\n lvs_sync_daemon_interface eth1\n}\n");
    let d = c.global.lvs_sync_daemon.as_ref().unwrap();
    // keepalived 2.2: sync id 0 (not the VRID) unless an id is given, which
    // this form cannot do.
    assert_eq!(basics(d), ("eth1", Some("VI_1"), 0));
    assert_eq!(d.location, Location::new("t.conf", 3));
    assert_eq!(
        warnings(&c),
        [
            format!("t.conf:1: {SKIPPED}"),
            "t.conf:3: warning: (VI_1) lvs_sync_daemon_interface in a vrrp_instance is deprecated - use global_defs' 'lvs_sync_daemon eth1 VI_1 id 0' (the same)".into(),
        ]
    );
    // The first of the two forms in the file wins; the other is an error.
    assert_eq!(
        errors(&format!(
            "{}vrrp_instance VI_3 {{\n lvs_sync_daemon_interface eth2\n}}\n",
            with_instances(" lvs_sync_daemon eth1 VI_1")
        )),
        ["t.conf:13: (VI_3) lvs_sync_daemon_interface: the sync daemon is already specified at t.conf:2 - keepalived ignores this one"]
    );
    assert_eq!(
        errors(
            "vrrp_instance VI_1 {\n lvs_sync_daemon_interface eth1\n}\nglobal_defs {\n lvs_sync_daemon eth2\n}\n"
        ),
        ["t.conf:5: lvs_sync_daemon already specified at t.conf:2 - keepalived ignores this one"]
    );
    assert_eq!(
        errors("vrrp_instance VI_1 {\n lvs_sync_daemon_interface\n}\n"),
        ["t.conf:2: lvs_sync_daemon_interface: missing interface"]
    );
    // keepalived skips a second block of the same name, keyword included.
    let c = parse(
        "vrrp_instance VI_1 {\n virtual_router_id 1\n}\nvrrp_instance VI_1 {\n lvs_sync_daemon_interface eth1\n}\n",
    );
    assert_eq!(c.global.lvs_sync_daemon, None);
}

#[test]
fn vrrp_instances_are_recorded() {
    let c = parse(
        "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n interface eth1\n priority 100\n}\n\
         vrrp_instance VI_2 {\n interface eth0123456789abcdef\n virtual_router_id 256\n}\n\
         vrrp_instance VI_1 {\n virtual_router_id 9\n}\n\
         vrrp_instance A B {\n virtual_router_id 9\n}\n\
         vrrp_instance VI_3\n\
         vrrp_instance \"with blank\" {\n virtual_router_id 3\n virtual_router_id x\n}\n",
    );
    let got: Vec<_> = c
        .vrrp_instances
        .iter()
        .map(|v| {
            (
                v.location.line,
                v.name.as_str(),
                v.virtual_router_id,
                v.interface.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            // The last interface given.
            (1, "VI_1", Some(51), Some("eth1")),
            // Too long a name and an invalid VRID are ignored by keepalived.
            (7, "VI_2", None, None),
            // The second VI_1 and the two-word name are skipped by keepalived.
            (17, "VI_3", None, None),
            // An invalid VRID keeps the previous one.
            (18, "with blank", Some(3), None),
        ]
    );
    // Each block is still skipped with the usual warning.
    assert_eq!(
        c.warnings
            .iter()
            .filter(|w| w.message.contains("'vrrp_instance' skipped"))
            .count(),
        6
    );
}

#[test]
fn notify_fifos() {
    let c = parse(
        "global_defs {\n notify_fifo /run/keepalived.fifo\n vrrp_notify_fifo \"/run/vrrp fifo\" nobody nogroup\n}\n",
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(
        c.global.notify_fifo,
        Some(NotifyFifo {
            path: PathBuf::from("/run/keepalived.fifo"),
            user: None
        })
    );
    assert_eq!(
        c.global.vrrp_notify_fifo,
        Some(NotifyFifo {
            path: PathBuf::from("/run/vrrp fifo"),
            user: Some(ScriptUser {
                user: "nobody".into(),
                group: Some("nogroup".into())
            })
        })
    );
    let c = parse("global_defs {\n vrrp_notify_fifo /run/v.fifo root\n}\n");
    assert_eq!(c.global.notify_fifo, None);
    assert_eq!(
        c.global.vrrp_notify_fifo.unwrap().user,
        Some(ScriptUser {
            user: "root".into(),
            group: None
        })
    );
    // The same FIFO for both: keepalived drops vrrp_notify_fifo.
    let c = parse("global_defs {\n notify_fifo /run/k.fifo\n vrrp_notify_fifo /run/k.fifo\n}\n");
    assert_eq!(
        c.global.notify_fifo.as_ref().unwrap().path,
        PathBuf::from("/run/k.fifo")
    );
    assert_eq!(c.global.vrrp_notify_fifo, None);
    assert_eq!(
        warnings(&c),
        ["t.conf:3: warning: vrrp_notify_fifo is the notify_fifo - keepalived ignores vrrp_notify_fifo (each line is written once)"]
    );
    // The scripts and the LVS FIFO stay unused.
    let c = parse("global_defs {\n notify_fifo_script /bin/x\n lvs_notify_fifo /run/l.fifo\n}\n");
    assert_eq!(
        warnings(&c),
        [
            "t.conf:2: warning: global_defs: 'notify_fifo_script' is not used by xvs - skipped",
            "t.conf:3: warning: global_defs: 'lvs_notify_fifo' is not used by xvs - skipped",
        ]
    );
}

#[test]
fn notify_fifo_errors() {
    assert_eq!(
        errors("global_defs {\n notify_fifo\n vrrp_notify_fifo\n}\n"),
        [
            "t.conf:2: notify_fifo: missing FIFO name",
            "t.conf:3: vrrp_notify_fifo: missing FIFO name",
        ]
    );
    assert_eq!(
        errors("global_defs {\n notify_fifo /a\n vrrp_notify_fifo /b\n notify_fifo /c\n vrrp_notify_fifo /d\n}\n"),
        [
            "t.conf:4: notify_fifo already specified at t.conf:2 - keepalived ignores '/c'",
            "t.conf:5: vrrp_notify_fifo already specified at t.conf:3 - keepalived ignores '/d'",
        ]
    );
}

#[test]
fn same_daemon_is_keepalived_ipvs_syncd_changed() {
    let a = syncd(" lvs_sync_daemon eth1 VI_1 port 9000");
    // Moved to another line, following another instance with the same id:
    // the same daemons (keepalived does not restart them).
    let c = parse(&with_instances(
        " router_id x\n lvs_sync_daemon eth1 VI_2 id 51 port 9000",
    ));
    let b = c.global.lvs_sync_daemon.unwrap();
    assert_ne!(a, b);
    assert!(a.same_daemon(&b));
    for other in [
        " lvs_sync_daemon eth2 VI_1 port 9000",
        " lvs_sync_daemon eth1 VI_1 port 9001",
        " lvs_sync_daemon eth1 VI_1 port 9000 id 1",
        " lvs_sync_daemon eth1 VI_1 port 9000 ttl 1",
        " lvs_sync_daemon eth1 VI_1 port 9000 maxlen 1000",
        " lvs_sync_daemon eth1 VI_1 port 9000 group 224.0.0.81",
    ] {
        assert!(!a.same_daemon(&syncd(other)), "{other}");
    }
}

#[test]
fn serde_round_trip() {
    let c = parse(&with_instances(
        " lvs_sync_daemon eth1 VI_1 group ff02::1 ttl 3\n notify_fifo /run/n.fifo a b",
    ));
    let s = serde_json::to_string(&c).unwrap();
    let back: Config = serde_json::from_str(&s).unwrap();
    assert_eq!(back, c);
}
