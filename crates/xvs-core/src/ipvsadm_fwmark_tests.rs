//! `-f` services (docs/research/fwmark.md §B.1) and the mark classifier
//! commands (§E.4).

use super::*;
use crate::api::Request;
use crate::fwmark::{MarkRule, PortRange};
use crate::model::{svc_flags, FwdMethod, Protocol, ServiceKey};
use crate::names::FileNames;
use std::net::IpAddr;
use std::net::Ipv4Addr;

fn names() -> FileNames {
    FileNames::from_texts(
        "10.0.0.1 web1\n10.0.0.9 web-9\n",
        "http 80/tcp www\nhttps 443/tcp\ndomain 53/udp\n",
    )
}

fn p(s: &str) -> Result<Command, ParseError> {
    let argv: Vec<String> = std::iter::once("xvsadm".to_string())
        .chain(s.split_whitespace().map(str::to_string))
        .collect();
    parse_with(&argv, &names())
}

fn fail(s: &str) -> String {
    match p(s) {
        Err(ParseError::Fail(m)) => m,
        other => panic!("{s}: expected fail, got {other:?}"),
    }
}

const F1: ServiceKey = ServiceKey {
    fwmark: 1,
    proto: Protocol::Tcp,
    addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    port: 0,
};

#[test]
fn fwmark_parse_table() {
    for bad in ["0", "-1", "4294967296", "0x10", "1a"] {
        assert_eq!(
            fail(&format!("-A -f {bad}")),
            format!("invalid fwmark value `{bad}' specified")
        );
    }
    let Ok(Command::AddService(s)) = p("-A -f +7") else {
        panic!("+7")
    };
    assert_eq!(s.key, ServiceKey::fwmark(7));
    let Ok(Command::AddService(s)) = p("-A -f 4294967295 -s wrr -p 60") else {
        panic!("max")
    };
    assert_eq!(s.key, ServiceKey::fwmark(u32::MAX));
    assert_eq!(s.scheduler, "wrr");
    assert_eq!(s.timeout, 60);
    assert_eq!(
        fail("-A -f 1 -t 10.0.0.1:80"),
        "multiple 'service-address' options specified"
    );
    assert_eq!(
        fail("-A -t 10.0.0.1:80 -f 1"),
        "multiple 'service-address' options specified"
    );
    assert_eq!(fail("-A -6 -f 1"), "-6 used before -f\n");
    let Ok(Command::AddService(s)) = p("-A -f 1 -6") else {
        panic!()
    };
    assert_eq!(s.key, ServiceKey::fwmark6(1));
}

#[test]
fn fwmark_service_commands() {
    let Ok(Command::AddService(s)) = p("-A -f 1") else {
        panic!("-A")
    };
    // No "Zero port" error for -f; the default scheduler.
    assert_eq!((s.key, s.scheduler.as_str()), (F1, "wlc"));
    // No "One-Packet ... only for UDP" for -f.
    let Ok(Command::EditService(s)) = p("-E -f 1 -s rr -o -p 60 -M 255.255.255.0") else {
        panic!("-E")
    };
    assert_eq!(s.key, F1);
    assert_eq!(
        s.flags & (svc_flags::ONEPACKET | svc_flags::PERSISTENT),
        svc_flags::ONEPACKET | svc_flags::PERSISTENT
    );
    assert_eq!(s.netmask, Ipv4Addr::new(255, 255, 255, 0));
    assert_eq!(p("-D -f 1"), Ok(Command::DelService(F1)));
    assert_eq!(p("-Z -f 1"), Ok(Command::Zero(Some(F1))));
    let Ok(Command::List(o)) = p("-L -n -f 1") else {
        panic!("-L")
    };
    assert_eq!(o.service, Some(F1));
    assert_eq!(
        p("-d -f 1 -r 10.0.0.2"),
        Ok(Command::DelDest {
            key: F1,
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            port: 0
        })
    );
}

#[test]
fn fwmark_dest_port_defaulting() {
    let dest = |s: &str| match p(s) {
        Ok(Command::AddDest { key, dest }) | Ok(Command::EditDest { key, dest }) => {
            assert_eq!(key, F1);
            (dest.port, dest.fwd)
        }
        other => panic!("{s}: {other:?}"),
    };
    // -r RS: the service port, 0 for -f.
    assert_eq!(dest("-a -f 1 -r 10.0.0.2 -m"), (0, FwdMethod::Masq));
    assert_eq!(dest("-a -f 1 -r 10.0.0.2"), (0, FwdMethod::Route));
    assert_eq!(dest("-a -f 1 -r 10.0.0.2:0 -i"), (0, FwdMethod::Tunnel));
    // DR/TUN keep their port on a fwmark service (ipvsadm copies the
    // service port only when there is no fwmark).
    assert_eq!(dest("-a -f 1 -r 10.0.0.2:80 -g"), (80, FwdMethod::Route));
    assert_eq!(
        dest("-e -f 1 -r 10.0.0.2:8080 -i"),
        (8080, FwdMethod::Tunnel)
    );
    assert_eq!(dest("-a -f 1 -r 10.0.0.2:http -m"), (80, FwdMethod::Masq));
}

fn rule(mark: u32, proto: Protocol, a: [u8; 4], len: u8, ports: &[(u16, u16)]) -> MarkRule {
    MarkRule {
        mark,
        proto,
        addr: Ipv4Addr::from(a),
        prefix_len: len,
        ports: ports
            .iter()
            .map(|&(first, last)| PortRange { first, last })
            .collect(),
    }
}

#[test]
fn mark_commands() {
    use Protocol::*;
    assert_eq!(
        p("--add-mark -t 207.175.44.110/31 -f 1"),
        Ok(Command::AddMarks(vec![rule(
            1,
            Tcp,
            [207, 175, 44, 110],
            31,
            &[]
        )]))
    );
    assert_eq!(
        p("--add-mark -t 10.1.0.0/24:80,https,8000-8080 -f 2"),
        Ok(Command::AddMarks(vec![rule(
            2,
            Tcp,
            [10, 1, 0, 0],
            24,
            &[(80, 80), (443, 443), (8000, 8080)]
        )]))
    );
    assert_eq!(
        p("--del-mark -u web1:0 --fwmark-service=3"),
        Ok(Command::DelMarks(vec![rule(
            3,
            Udp,
            [10, 0, 0, 1],
            32,
            &[]
        )]))
    );
    assert_eq!(
        p("--add-mark -t web-9:http -f 3"),
        Ok(Command::AddMarks(vec![rule(
            3,
            Tcp,
            [10, 0, 0, 9],
            32,
            &[(80, 80)]
        )]))
    );
    assert_eq!(
        fail("--add-mark -t 10.0.0.9-10.0.0.1 -f 3"),
        "illegal mark address `10.0.0.9-10.0.0.1' specified"
    );
    assert_eq!(
        fail("--add-mark -t nosuchhost -f 3"),
        "illegal mark address `nosuchhost' specified"
    );
    // A range becomes the fewest prefixes.
    assert_eq!(
        p("--add-mark --sctp-service 10.0.0.1-10.0.0.6:5060 -f 4"),
        Ok(Command::AddMarks(vec![
            rule(4, Sctp, [10, 0, 0, 1], 32, &[(5060, 5060)]),
            rule(4, Sctp, [10, 0, 0, 2], 31, &[(5060, 5060)]),
            rule(4, Sctp, [10, 0, 0, 4], 31, &[(5060, 5060)]),
            rule(4, Sctp, [10, 0, 0, 6], 32, &[(5060, 5060)]),
        ]))
    );
    assert_eq!(
        p("--add-mark -t 0.0.0.0-255.255.255.255 -f 5"),
        Ok(Command::AddMarks(vec![rule(5, Tcp, [0, 0, 0, 0], 0, &[])]))
    );
    assert_eq!(
        p("--list-marks -n"),
        Ok(Command::ListMarks { numeric: true })
    );
    assert_eq!(p("--clear-marks"), Ok(Command::ClearMarks));
    assert_eq!(
        p("--clear-marks").unwrap().request(),
        Some(Request::ClearMarks)
    );
    let Some(Request::Batch { requests }) =
        p("--add-mark -t 10.0.0.2-10.0.0.4 -f 1").unwrap().request()
    else {
        panic!("batch")
    };
    assert_eq!(requests.len(), 2);
    assert!(p("--add-mark -t 10.0.0.0/8 -f 1")
        .unwrap()
        .is_mark_command());
}

#[test]
fn mark_command_errors() {
    let cases = [
        (
            "--add-mark -t 10.0.0.0/8",
            "--add-mark needs a mark (-f MARK)",
        ),
        (
            "--add-mark -f 1",
            "--add-mark needs -t, -u or --sctp-service",
        ),
        (
            "--del-mark -f 1",
            "--del-mark needs -t, -u or --sctp-service",
        ),
        (
            "--add-mark -t 10.0.0.0/8 -f 0",
            "invalid fwmark value `0' specified",
        ),
        (
            "--add-mark -t 10.0.0.0/8 -f x",
            "invalid fwmark value `x' specified",
        ),
        (
            "--add-mark -t 10.0.0.1/24 -f 1",
            "invalid mark address `10.0.0.1/24' (host bits set)",
        ),
        (
            "--add-mark -t 10.0.0.0/33 -f 1",
            "illegal mark address `10.0.0.0/33' specified",
        ),
        (
            "--add-mark -t 10.0.0.0/8:90-80 -f 1",
            "illegal port range `90-80' specified",
        ),
        (
            "--add-mark -t 10.0.0.0/8:0-5 -f 1",
            "illegal port range `0-5' specified",
        ),
        (
            "--add-mark -t 10.0.0.0/8:99999 -f 1",
            "illegal port range `99999' specified",
        ),
        (
            "--add-mark -t 10.0.0.0/8 -f 1 -s rr",
            "illegal option `-s' for --add-mark",
        ),
        (
            "--add-mark -t 10.0.0.0/8 -f 1 -r 10.0.0.2",
            "illegal option `-r' for --add-mark",
        ),
        ("--list-marks -f 1", "illegal option `-f' for --list-marks"),
        (
            "--add-mark -t 10.0.0.0/8 -u 10.0.0.0/8 -f 1",
            "multiple 'service-address' options specified",
        ),
    ];
    for (line, msg) in cases {
        assert_eq!(fail(line), msg, "{line}");
        assert_eq!(p(line).unwrap_err().exit_code(), EXIT_FAIL);
    }
    for line in [
        "--add-mark -t 10.0.0.0/8 -f 1 -6",
        "--add-mark -t [::1]:80 -f 1",
    ] {
        assert_eq!(
            p(line),
            Err(ParseError::Unsupported(
                "IPv6 is not supported by xvs".into()
            ))
        );
    }
}

#[test]
fn mark_list_and_save_texts() {
    use Protocol::*;
    let rules = vec![
        rule(2, Tcp, [10, 1, 0, 0], 24, &[(80, 80), (443, 443)]),
        rule(1, Udp, [207, 175, 44, 110], 31, &[]),
        rule(1, Tcp, [207, 175, 44, 110], 31, &[]),
        rule(u32::MAX, Sctp, [10, 0, 0, 1], 32, &[(5060, 5061)]),
    ];
    assert_eq!(
        list_marks(&rules),
        "FWM  1  TCP  207.175.44.110/31:*\n\
         FWM  1  UDP  207.175.44.110/31:*\n\
         FWM  2  TCP  10.1.0.0/24:80,443\n\
         FWM  -1  SCTP 10.0.0.1/32:5060-5061\n"
    );
    let saved = save_marks(&rules);
    assert_eq!(
        saved,
        "--add-mark -t 10.1.0.0/24:80,443 -f 2\n\
         --add-mark -u 207.175.44.110/31 -f 1\n\
         --add-mark -t 207.175.44.110/31 -f 1\n\
         --add-mark --sctp-service 10.0.0.1/32:5060-5061 -f 4294967295\n"
    );
    assert_eq!(save_marks(&[]), "");
    // -R takes the saved lines back as they were.
    let back: Vec<MarkRule> = restore_lines(&saved, "xvsadm")
        .flat_map(|(_, argv)| match parse_restore_line(&argv, &names()) {
            Ok(Command::AddMarks(r)) => r,
            other => panic!("{argv:?}: {other:?}"),
        })
        .collect();
    assert_eq!(back, rules);
}
