//! The report's unit tests.

use super::cells::{f0, fmt_int, k, stat};
use super::wrk::duration_ms;
use super::*;

#[test]
fn parses_wrk() {
    let out = "Running 5s test @ http://198.51.100.10/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02ms  512.00us  20.00ms   90.00%
    Req/Sec    15.00k     1.00k   17.00k    70.00%
  Latency Distribution
     50%  800.00us
     75%    1.10ms
     90%    1.50ms
     99%    3.25ms
  150000 requests in 5.00s, 20.00MB read
  Socket errors: connect 0, read 3, write 0, timeout 1
  Non-2xx or 3xx responses: 2
Requests/sec:  29999.50
Transfer/sec:      4.00MB
";
    let w = parse_wrk(out).unwrap();
    assert_eq!(w.requests, 150000);
    assert_eq!(w.errors, 6);
    assert!((w.rps - 29999.5).abs() < 1e-9);
    assert!((w.p99_ms - 3.25).abs() < 1e-9);
    assert_eq!(duration_ms("850.00us"), Some(0.85));
    assert_eq!(duration_ms("1.50s"), Some(1500.0));
}

#[test]
fn dp_cost_tables_per_program() {
    let cfg = Config {
        smoke: true,
        rounds: 1,
        duration: 1,
        conns: 1,
        rs_server: RsServer::Testsrv,
        only: None,
        dp_cost: true,
        scale: false,
        out: None,
        command_line: "xvs-bench --smoke".into(),
        in_vm: false,
    };
    let mut r = Report::new(&cfg);
    r.parse_dp_cost(
            "MEM key_size=16 value_size=40 max_entries=262144 memlock=31457280
BASE prog=xvs_xdp base=r1 calls=2000 ns=50.0 mean=51.0 verdicts=PASS:2000
BASE prog=xvs_xdp base=r200 calls=100 ns=10.0 mean=10.0 verdicts=PASS:100
BASE prog=xvs_xdp base=slope50_250 calls=100 ns=4.5 mean=4.4 verdicts=PASS:200
FILL prog=xvs_xdp entries=10000 secs=0.01
COST prog=xvs_xdp fill=0 kind=nat_est base=r1 calls=2000 ns=300.0 mean=310.0 verdicts=REDIRECT:2000
COST prog=xvs_xdp fill=10000 kind=dr_est_repeat base=r200 calls=100 ns=110.0 mean=111.0 verdicts=REDIRECT:100 ttl_in=255 ttl_out=55:100
COST prog=xvs_xdp fill=10000 kind=dr_est_slope base=slope50_250 calls=100 ns=74.5 mean=75.0 verdicts=REDIRECT:200 ttl_in=255 ttl_out=5:100/205:100
",
        );
    r.parse_dp_cost(
        "BASE prog=xvs_tc base=r1 calls=2000 ns=60.0 mean=61.0 verdicts=PASS:2000
COST prog=xvs_tc fill=0 kind=nat_est base=r1 calls=2000 ns=260.0 mean=270.0 verdicts=REDIRECT:2000
",
    );
    let md = r.markdown();
    let xdp = md.find("**`xvs_xdp`**").unwrap();
    let tc = md.find("**`xvs_tc`**").unwrap();
    assert!(xdp < tc);
    assert!(md[xdp..tc].contains("| NAT established, client → RS | 2 000 conns × 1 call, repeat 1 | 250.0 (REDIRECT:2000) | – |"));
    assert!(md[xdp..tc].contains("repeat 200 on the frame the previous run left (TTL 255) | – | 100.0 (REDIRECT:100; TTL 255→55 ×100) |"));
    assert!(md[xdp..tc].contains("| – | 70.0 (REDIRECT:200; TTL 255→5 ×100, 205 ×100) |"));
    assert!(md[xdp..tc]
        .contains("50.0 ns (repeat 1), 10.0 ns (repeat 200), 4.5 ns (slope repeat 50→250)"));
    assert!(md[xdp..tc].contains("to 10.0k in 0.01 s"));
    assert!(md[tc..].contains(
        "| NAT established, client → RS | 2 000 conns × 1 call, repeat 1 | 200.0 (REDIRECT:2000) |"
    ));
    assert!(!md[tc..].contains("repeat 200"));
    assert_eq!(fmt_int(20_000), "20 000");
    assert_eq!(fmt_int(100), "100");
}

fn cfg(in_vm: bool) -> Config {
    Config {
        smoke: false,
        rounds: 3,
        duration: 3,
        conns: 32,
        rs_server: RsServer::Nginx,
        only: None,
        dp_cost: false,
        scale: false,
        out: None,
        command_line: "xvs-bench --in-vm".into(),
        in_vm,
    }
}

#[test]
fn vm_accel_from_cpuinfo() {
    assert_eq!(
        vm_accel("processor\t: 0\nmodel name\t: QEMU TCG CPU version 2.5+\n"),
        "TCG"
    );
    assert_eq!(
        vm_accel("model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz\n"),
        "KVM"
    );
}

#[test]
fn ratios_of_medians() {
    let mut r = Report::new(&cfg(false));
    for (c, v) in [
        (Contender::Direct, [100.0, 90.0, 110.0]),
        (Contender::IpvsNat, [50.0, 40.0, 60.0]),
        (Contender::XvsNat, [60.0, 80.0, 70.0]),
        (Contender::Nft, [35.0, 30.0, 40.0]),
        (Contender::IpvsDr, [20.0, 20.0, 20.0]),
        (Contender::XvsDr, [30.0, 30.0, 30.0]),
    ] {
        for x in v {
            r.add(c, "ka_rps", x);
            r.add(c, "ka_cpu_us", 1000.0 / x);
        }
    }
    r.not_run
        .push("`ipvs-tun`: not run: no IPVS in this kernel (test)".into());
    let md = r.markdown();
    assert!(
        md.contains("#### Ratios of medians (within this run)"),
        "{md}"
    );
    // 70 / 50, 1000/70 ÷ 1000/50 = 50/70.
    assert!(
        md.contains("| `xvs-nat` ÷ `ipvs-nat` | 1.40× | – | – | – | 0.71× | – | – | – |"),
        "{md}"
    );
    assert!(md.contains("| `xvs-dr` ÷ `ipvs-dr` | 1.50× |"), "{md}");
    assert!(md.contains("| `ipvs-nat` ÷ `nft-nat` | 1.43× |"), "{md}");
    assert!(!md.contains("`xvs-tun` ÷"), "{md}");
    // No direct-dr in this run: the DR contenders against direct.
    assert!(
        md.contains("| `ipvs-dr` | `direct` | 0.20× | – | – | – |"),
        "{md}"
    );
    assert!(md.contains("| `xvs-nat` | `direct` | 0.70× |"), "{md}");
    assert!(md.contains("* `ipvs-tun`: not run: no IPVS in this kernel (test)\n"));
    assert!(!md.contains("in a VM"));
    let mut v = Report::new(&cfg(true));
    v.vm = Some("TCG");
    let md = v.markdown();
    assert!(md.starts_with("### Run of "), "{md}");
    let first = md.lines().next().unwrap();
    assert!(first.contains("in a VM (TCG, kernel "), "{first}");
    assert!(md.contains("**Measured under emulation (qemu TCG"), "{md}");
    assert!(md.contains("only ratios between contenders within this run are meaningful"));
}

#[test]
fn stats_and_markers() {
    assert_eq!(stat(&[3.0, 1.0, 2.0], f0), "2 [1–3]");
    assert_eq!(stat(&[], f0), "–");
    assert_eq!(k(47_300.0), "47.3k");
    let dir = std::env::temp_dir().join(format!("xvs-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("b.md");
    std::fs::write(&p, format!("# head\n\n{BEGIN}\nold\n{END}\n\ntail\n")).unwrap();
    write(&p, "new").unwrap();
    let s = std::fs::read_to_string(&p).unwrap();
    assert!(s.starts_with("# head\n\n"));
    assert!(s.contains("new") && !s.contains("old"));
    assert!(s.ends_with("tail\n"));
    std::fs::remove_dir_all(&dir).unwrap();
}
