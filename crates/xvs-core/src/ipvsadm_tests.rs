use super::*;
use crate::api::Request;
use crate::model::{
    svc_flags, Dest, FwdMethod, Protocol, Service, ServiceKey, Timeouts, TunCsum, TunType,
};
use crate::names::FileNames;
use std::net::IpAddr;
use std::net::Ipv4Addr;

fn names() -> FileNames {
    FileNames::from_texts(
        "10.0.0.1 web1\n192.168.1.0 mask24\n",
        "http 80/tcp www\nhttp 80/udp\ndomain 53/udp\nsip 5060/tcp\nsip 5060/sctp\n\
         diameter 3868/sctp\n",
    )
}

fn argv(s: &str) -> Vec<String> {
    std::iter::once("ipvsadm".to_string())
        .chain(s.split_whitespace().map(str::to_string))
        .collect()
}

fn p(s: &str) -> Result<Command, ParseError> {
    parse_with(&argv(s), &names())
}

fn fail(s: &str) -> String {
    match p(s) {
        Err(ParseError::Fail(m)) => m,
        other => panic!("{s}: expected fail, got {other:?}"),
    }
}

fn key(proto: Protocol, a: [u8; 4], port: u16) -> ServiceKey {
    ServiceKey {
        fwmark: 0,
        proto,
        addr: IpAddr::V4(Ipv4Addr::from(a)),
        port,
    }
}

fn tcp(a: [u8; 4], port: u16) -> ServiceKey {
    key(Protocol::Tcp, a, port)
}

#[test]
fn add_service_defaults() {
    let c = p("-A -t 10.1.1.1:80").unwrap();
    let mut s = Service::new(tcp([10, 1, 1, 1], 80), "wlc");
    assert_eq!(c, Command::AddService(s.clone()));
    s.scheduler = "rr".into();
    assert_eq!(
        p("--add-service --tcp-service 10.1.1.1:80 --scheduler rr").unwrap(),
        Command::AddService(s.clone())
    );
    assert_eq!(
        p("-A -t10.1.1.1:80 -srr").unwrap(),
        Command::AddService(s.clone())
    );
    assert_eq!(
        p("--add-service --tcp-service=10.1.1.1:80 --scheduler=rr").unwrap(),
        Command::AddService(s)
    );
}

#[test]
fn service_address_forms() {
    let k = |c: Command| match c {
        Command::DelService(k) => k,
        o => panic!("{o:?}"),
    };
    assert_eq!(k(p("-D -t 10.1.1.1:http").unwrap()), tcp([10, 1, 1, 1], 80));
    assert_eq!(k(p("-D -t web1:www").unwrap()), tcp([10, 0, 0, 1], 80));
    assert_eq!(
        k(p("-D -u 10.1.1.1:domain").unwrap()),
        key(Protocol::Udp, [10, 1, 1, 1], 53)
    );
    assert_eq!(k(p("-D -t 10.1.1.1").unwrap()), tcp([10, 1, 1, 1], 0));
    // inet_aton forms
    assert_eq!(k(p("-D -t 10.1:80").unwrap()), tcp([10, 0, 0, 1], 80));
    assert_eq!(k(p("-D -t 0x0a000001:80").unwrap()), tcp([10, 0, 0, 1], 80));
    assert_eq!(k(p("-D -t 012.0.0.1:80").unwrap()), tcp([10, 0, 0, 1], 80));
    assert_eq!(k(p("-D -t 10.1.1.1:+80").unwrap()), tcp([10, 1, 1, 1], 80));
    // ipvsadm's bracket quirk: an IPv4 address in brackets loses its port
    assert_eq!(k(p("-D -t [10.1.1.1]:80").unwrap()), tcp([10, 1, 1, 1], 0));
    for bad in [
        "80",
        "",
        "10.1.1.1:",
        "10.1.1.1:99999",
        "nosuch:80",
        "10.1.1.1:domain",
        "[10.1.1.1",
        "[10.1.1.1]",
        "1.2.3.256:80",
        "09.1.1.1:80",
    ] {
        let a = vec![
            "ipvsadm".to_string(),
            "-D".into(),
            "-t".into(),
            bad.to_string(),
        ];
        assert_eq!(
            parse_with(&a, &names()),
            Err(ParseError::Fail(
                "illegal virtual server address[:port] specified".into()
            )),
            "{bad}"
        );
    }
    let v6 = |port| ServiceKey {
        fwmark: 0,
        proto: Protocol::Tcp,
        addr: "::1".parse().unwrap(),
        port,
    };
    assert_eq!(p("-D -t [::1]:80").unwrap(), Command::DelService(v6(80)));
    // A bare IPv6 address has no port.
    assert_eq!(p("-D -t ::1").unwrap(), Command::DelService(v6(0)));
    assert_eq!(
        p("-D --sctp-service 10.1.1.1:80").unwrap(),
        Command::DelService(key(Protocol::Sctp, [10, 1, 1, 1], 80))
    );
}

#[test]
fn sctp_services() {
    let sctp = |a, port| key(Protocol::Sctp, a, port);
    let k = sctp([10, 0, 0, 1], 5060);
    assert_eq!(
        p("-A --sctp-service 10.0.0.1:5060 -s rr").unwrap(),
        Command::AddService(Service::new(k, "rr"))
    );
    assert_eq!(
        p("--add-service --sctp-service=10.0.0.1:5060").unwrap(),
        Command::AddService(Service::new(k, "wlc"))
    );
    // Port names are looked up with the "sctp" protocol word, as
    // ipvsadm's getservbyname(name, "sctp") does.
    assert_eq!(
        p("-A --sctp-service web1:sip").unwrap(),
        Command::AddService(Service::new(k, "wlc"))
    );
    assert_eq!(
        p("-E --sctp-service 10.0.0.1:diameter -s wrr").unwrap(),
        Command::EditService(Service::new(sctp([10, 0, 0, 1], 3868), "wrr"))
    );
    // "domain" exists only for udp in names(): no sctp port by that name.
    assert_eq!(
        fail("-A --sctp-service 10.0.0.1:domain"),
        "illegal virtual server address[:port] specified"
    );
    let Command::AddService(s) = p("-A --sctp-service 10.0.0.1:0 -p 60").unwrap() else {
        panic!()
    };
    assert_eq!((s.key, s.timeout), (sctp([10, 0, 0, 1], 0), 60));
    assert_eq!(
        fail("-A --sctp-service 10.0.0.1:0"),
        "Zero port specified for non-persistent service"
    );
    assert_eq!(
        fail("-A --sctp-service 10.0.0.1:5060 -o"),
        "One-Packet Scheduling is only for UDP virtual services"
    );
    let Command::AddDest { key, dest } =
        p("-a --sctp-service 10.0.0.1:5060 -r 10.0.0.2 -m -w 3").unwrap()
    else {
        panic!()
    };
    assert_eq!(key, k);
    assert_eq!(
        (dest.addr, dest.port, dest.fwd, dest.weight),
        (IpAddr::from([10, 0, 0, 2]), 5060, FwdMethod::Masq, 3)
    );
    let Command::EditDest { dest, .. } =
        p("-e --sctp-service 10.0.0.1:5060 -r 10.0.0.2:5061 -i").unwrap()
    else {
        panic!()
    };
    // Not masquerading: the port is the service's, as for TCP.
    assert_eq!((dest.port, dest.fwd), (5060, FwdMethod::Tunnel));
    assert_eq!(
        p("-d --sctp-service 10.0.0.1:5060 -r 10.0.0.2").unwrap(),
        Command::DelDest {
            key: k,
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            port: 5060
        }
    );
    let Command::List(l) = p("-Ln --sctp-service 10.0.0.1:5060").unwrap() else {
        panic!()
    };
    assert_eq!((l.service, l.numeric), (Some(k), true));
    assert_eq!(
        p("-Z --sctp-service 10.0.0.1:5060").unwrap(),
        Command::Zero(Some(k))
    );
    let Ok(Command::AddService(s)) = p("-A --sctp-service [::1]:5060") else {
        panic!()
    };
    assert_eq!(s.key.proto, Protocol::Sctp);
    assert_eq!(s.key.addr, "::1".parse::<IpAddr>().unwrap());
    // Only the long form exists; two service options still conflict.
    assert!(p("-A --sctp-service 10.0.0.1:5060 -t 10.0.0.1:80").is_err());
}

#[test]
fn inet_aton_cases() {
    assert_eq!(inet_aton("1.2.3.4"), Some(Ipv4Addr::new(1, 2, 3, 4)));
    assert_eq!(inet_aton("1"), Some(Ipv4Addr::new(0, 0, 0, 1)));
    assert_eq!(inet_aton("1.2.3"), Some(Ipv4Addr::new(1, 2, 0, 3)));
    assert_eq!(inet_aton("1.2.3.4 junk"), Some(Ipv4Addr::new(1, 2, 3, 4)));
    assert_eq!(inet_aton("1.2.3.4x"), None);
    assert_eq!(inet_aton("1.2.3.4.5"), None);
    assert_eq!(inet_aton("256.1.1.1"), None);
    assert_eq!(inet_aton("1.2.65536"), None);
    assert_eq!(inet_aton(""), None);
    assert_eq!(inet_aton(".1"), None);
}

#[test]
fn persistence_and_flags() {
    let c = p("-A -t 10.1.1.1:0 -p").unwrap();
    let Command::AddService(s) = c else { panic!() };
    assert_eq!(s.flags, svc_flags::PERSISTENT);
    assert_eq!(s.timeout, 360);
    let Command::AddService(s) = p("-A -t 10.1.1.1:0 -p 600 -M 255.255.255.0").unwrap() else {
        panic!()
    };
    assert_eq!(s.timeout, 600);
    assert_eq!(s.netmask, Ipv4Addr::new(255, 255, 255, 0));
    let Command::AddService(s) = p("-A -t 10.1.1.1:0 -p600 -M mask24").unwrap() else {
        panic!()
    };
    assert_eq!(s.timeout, 600);
    assert_eq!(s.netmask, Ipv4Addr::new(192, 168, 1, 0));
    // -p followed by an option keeps the default
    let Command::AddService(s) = p("-A -t 10.1.1.1:0 -p -s rr").unwrap() else {
        panic!()
    };
    assert_eq!((s.timeout, s.scheduler.as_str()), (360, "rr"));
    let Command::AddService(s) = p("-A -t 10.1.1.1:0 --persistent=5").unwrap() else {
        panic!()
    };
    assert_eq!(s.timeout, 5);
    let Command::AddService(s) =
        p("-A -u 10.1.1.1:53 -o --pe sip -s sh -b sh-port,sh-fallback").unwrap()
    else {
        panic!()
    };
    assert_eq!(
        s.flags,
        svc_flags::ONEPACKET | svc_flags::SCHED1 | svc_flags::SCHED2
    );
    assert_eq!(s.pe_name.as_deref(), Some("sip"));
    let Command::AddService(s) = p("-A -t 10.1.1.1:80 -b flag-1,flag-3").unwrap() else {
        panic!()
    };
    assert_eq!(s.flags, svc_flags::SCHED1 | svc_flags::SCHED3);
    let Command::EditService(s) = p("-E -t 10.1.1.1:80 -s mh -b mh-port").unwrap() else {
        panic!()
    };
    assert_eq!(s.flags, svc_flags::SCHED2);
    let Command::AddService(s) = p("-A -t 10.1.1.1:80 -s abcdefghijklmnopqrst").unwrap() else {
        panic!()
    };
    assert_eq!(s.scheduler, "abcdefghijklmno");
}

#[test]
fn persistence_errors() {
    assert_eq!(
        fail("-A -t 10.1.1.1:0 -p 0"),
        "invalid timeout value `0' specified"
    );
    assert_eq!(
        fail("-A -t 10.1.1.1:0 -p 2678401"),
        "invalid timeout value `2678401' specified"
    );
    assert_eq!(
        fail("-A -t 10.1.1.1:0 -p abc"),
        "invalid timeout value `abc' specified"
    );
    assert_eq!(
        fail("-A -t 10.1.1.1:0 -p 1 -M foo"),
        "illegal virtual server persistent mask specified"
    );
    assert_eq!(
        fail("-A -t 10.1.1.1:0"),
        "Zero port specified for non-persistent service"
    );
    assert_eq!(
        fail("-E -t 10.1.1.1"),
        "Zero port specified for non-persistent service"
    );
    assert_eq!(
        fail("-A -t 10.1.1.1:80 -o"),
        "One-Packet Scheduling is only for UDP virtual services"
    );
    assert_eq!(
        fail("-A -t 10.1.1.1:80 -b bogus"),
        "invalid scheduler flag `bogus'"
    );
    assert_eq!(
        fail("-A -t 10.1.1.1:80 -b sh-port"),
        "incompatible scheduler flag `sh-port'"
    );
    assert_eq!(
        fail("-A -t 10.1.1.1:80 -s sh -b mh-fallback"),
        "incompatible scheduler flag `mh-fallback'"
    );
    assert_eq!(
        fail("-A -t 10.1.1.1:80 -s rr -b sh-fallback"),
        "incompatible scheduler flag `sh-fallback'"
    );
    assert_eq!(
        fail("-A -t 10.1.1.1:80 -s sh -b mh-port"),
        "incompatible scheduler flag `mh-port'"
    );
}

#[test]
fn dest_commands() {
    let c = p("-a -t 10.1.1.1:80 -r 10.2.2.2:8080 -m -w 5 -x 100 -y 10").unwrap();
    let mut d = Dest::new(Ipv4Addr::new(10, 2, 2, 2), 8080);
    d.fwd = FwdMethod::Masq;
    d.weight = 5;
    d.u_threshold = 100;
    d.l_threshold = 10;
    assert_eq!(
        c,
        Command::AddDest {
            key: tcp([10, 1, 1, 1], 80),
            dest: d
        }
    );
    // -g forces the service port; default method is -g
    let Command::AddDest { dest, .. } = p("-a -t 10.1.1.1:80 -r 10.2.2.2:8080").unwrap() else {
        panic!()
    };
    assert_eq!(
        (dest.port, dest.fwd, dest.weight),
        (80, FwdMethod::Route, 1)
    );
    let Command::AddDest { dest, .. } = p("-a -t 10.1.1.1:80 -r 10.2.2.2 -m").unwrap() else {
        panic!()
    };
    assert_eq!(dest.port, 80);
    // -r before -t: the port is not known yet
    let Command::AddDest { dest, .. } = p("-a -r 10.2.2.2 -t 10.1.1.1:80 -m").unwrap() else {
        panic!()
    };
    assert_eq!(dest.port, 0);
    let Command::EditDest { dest, .. } =
        p("--edit-server -t 10.1.1.1:80 --real-server 10.2.2.2 --masquerading --weight 0").unwrap()
    else {
        panic!()
    };
    assert_eq!((dest.weight, dest.fwd), (0, FwdMethod::Masq));
    let Command::AddDest { dest, .. } =
        p("-a -t 10.1.1.1:80 -r 10.2.2.2 -i --tun-type gue --tun-port 6080 --tun-remcsum").unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (dest.fwd, dest.tun_type, dest.tun_port, dest.tun_csum),
        (FwdMethod::Tunnel, TunType::Gue, 6080, TunCsum::RemCsum)
    );
    let Command::AddDest { dest, .. } =
        p("-a -t 10.1.1.1:80 -r 10.2.2.2 --ipip --tun-type gre --tun-csum").unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (dest.tun_type, dest.tun_csum),
        (TunType::Gre, TunCsum::Csum)
    );
    let Command::AddDest { dest, .. } =
        p("-a -t 10.1.1.1:80 -r 10.2.2.2 -i --tun-type gue --tun-port 1 --tun-nocsum").unwrap()
    else {
        panic!()
    };
    assert_eq!(dest.tun_csum, TunCsum::NoCsum);
    let Command::AddDest { dest, .. } =
        p("-a -t 10.1.1.1:80 -r 10.2.2.2 -i --tun-type ipip").unwrap()
    else {
        panic!()
    };
    assert_eq!(dest.tun_type, TunType::Ipip);
    assert_eq!(
        p("-d -t 10.1.1.1:80 -r 10.2.2.2:81").unwrap(),
        Command::DelDest {
            key: tcp([10, 1, 1, 1], 80),
            addr: IpAddr::V4(Ipv4Addr::new(10, 2, 2, 2)),
            port: 81
        }
    );
    assert_eq!(
        p("--delete-server -t 10.1.1.1:80 -r web1").unwrap(),
        Command::DelDest {
            key: tcp([10, 1, 1, 1], 80),
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            port: 80
        }
    );
}

#[test]
fn dest_errors() {
    assert_eq!(
        fail("-a -t 10.1.1.1:80 -r 10.2.2.2 -w 2147483648"),
        "illegal weight specified"
    );
    assert_eq!(
        fail("-a -t 10.1.1.1:80 -r 10.2.2.2 -w -1"),
        "illegal weight specified"
    );
    assert_eq!(
        fail("-a -t 10.1.1.1:80 -r 10.2.2.2 -w x"),
        "illegal weight specified"
    );
    assert_eq!(
        fail("-a -t 10.1.1.1:80 -r 10.2.2.2 -x -1"),
        "illegal u_threshold specified"
    );
    assert_eq!(
        fail("-a -t 10.1.1.1:80 -r 10.2.2.2 -y 2147483648"),
        "illegal l_threshold specified"
    );
    assert_eq!(
        fail("-a -t 10.1.1.1:80 -r 10.2.2.2:x"),
        "illegal real server address[:port] specified"
    );
    assert_eq!(
        fail("-a -t 10.1.1.1:80 -r 10.2.2.2 -m -g"),
        "multiple 'forwarding-method' options specified"
    );
    assert_eq!(
        fail("-a -t 10.1.1.1:80 -r ::1 -m"),
        "Different address family is allowed only for tunneling servers"
    );
    assert_eq!(
        fail("-a -t 10.1.1.1:80 -r 10.2.2.2 --tun-type gre"),
        "Tunnel options conflict with forward method"
    );
    assert_eq!(
        fail("-a -t 10.1.1.1:80 -r 10.2.2.2 -m --tun-csum"),
        "Tunnel options conflict with forward method"
    );
    assert_eq!(
        fail("-a -t 10.1.1.1:80 -r 10.2.2.2 -i --tun-type foo"),
        "illegal tunnel type specified"
    );
    assert_eq!(
        fail("-a -t 10.1.1.1:80 -r 10.2.2.2 -i --tun-port 0"),
        "illegal tunnel port specified"
    );
    assert_eq!(
        fail("-a -t 10.1.1.1:80 -r 10.2.2.2 -i --tun-type gue"),
        "You need to supply the 'tun-port' option for the 'gue' tunnel type"
    );
    assert_eq!(
        fail("-a -t 10.1.1.1:80 -r 10.2.2.2 -i --tun-port 5"),
        "Illegal 'tun-port' option with the 'ipip' tunnel type"
    );
    assert_eq!(
        fail("-a -t 10.1.1.1:80 -r 10.2.2.2 -i --tun-type gre --tun-remcsum"),
        "Illegal 'tun-remcsum' option with the 'gre' tunnel type"
    );
    assert_eq!(
        fail(
            "-a -t 10.1.1.1:80 -r 10.2.2.2 -i --tun-type gue --tun-port 5 --tun-csum --tun-nocsum"
        ),
        "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gue' tunnel type"
    );
    assert_eq!(
        fail("-a -t 10.1.1.1:80"),
        "You need to supply the 'real-server' option for the 'add-server' command"
    );
    assert_eq!(
        fail("-a -r 10.2.2.2"),
        "You need to supply the 'service-address' option for the 'add-server' command"
    );
    assert_eq!(
        fail("-e -t 10.1.1.1:80"),
        "You need to supply the 'real-server' option for the 'edit-server' command"
    );
    assert_eq!(
        fail("-d -t 10.1.1.1:80 -r 10.2.2.2 -w 1"),
        "Illegal 'weight' option with the 'delete-server' command"
    );
    assert_eq!(
        fail("-d -t 10.1.1.1:80 -r 10.2.2.2 -m"),
        "Illegal 'forwarding-method' option with the 'delete-server' command"
    );
}

#[test]
fn matrix_errors() {
    assert_eq!(
        fail("-A"),
        "You need to supply the 'service-address' option for the 'add-service' command"
    );
    assert_eq!(
        fail("-E -s rr"),
        "You need to supply the 'service-address' option for the 'edit-service' command"
    );
    assert_eq!(
        fail("-D"),
        "You need to supply the 'service-address' option for the 'delete-service' command"
    );
    assert_eq!(
        fail("-A -t 10.1.1.1:80 -r 10.2.2.2"),
        "Illegal 'real-server' option with the 'add-service' command"
    );
    assert_eq!(
        fail("-A -n -t 10.1.1.1:80"),
        "Illegal 'numeric' option with the 'add-service' command"
    );
    assert_eq!(
        fail("-D -t 10.1.1.1:80 -s rr"),
        "Illegal 'scheduler' option with the 'delete-service' command"
    );
    assert_eq!(
        fail("-C -n"),
        "Illegal 'numeric' option with the 'flush' command"
    );
    assert_eq!(
        fail("-L -s rr"),
        "Illegal 'scheduler' option with the 'list' command"
    );
    assert_eq!(
        fail("-L -o"),
        "Illegal 'ops' option with the 'list' command"
    );
    assert_eq!(
        fail("-L -c --timeout"),
        "The option 'timeout' conflicts with the 'connection' option in the 'list' command"
    );
    assert_eq!(
        fail("-L -t 10.1.1.1:80 -c"),
        "The option 'service-address' conflicts with the 'connection' option in the 'list' command"
    );
    assert_eq!(
        fail("-L --daemon --timeout"),
        "The option 'daemon' conflicts with the 'timeout' option in the 'list' command"
    );
    assert_eq!(
        fail("-S -c"),
        "Illegal 'connection' option with the 'save' command"
    );
    assert_eq!(
        fail("-R -n"),
        "Illegal 'numeric' option with the 'restore' command"
    );
    assert_eq!(
        fail("-Z -n"),
        "Illegal 'numeric' option with the 'zero' command"
    );
    assert_eq!(
        fail("--set 1 2 3 -n"),
        "Illegal 'numeric' option with the 'set' command"
    );
    assert_eq!(
        fail("--start-daemon master -n"),
        "Illegal 'numeric' option with the 'start-daemon' command"
    );
    assert_eq!(
        fail("--stop-daemon backup --mcast-interface eth0"),
        "Illegal 'mcast-interface' option with the 'stop-daemon' command"
    );
    assert_eq!(fail("-L -n -n"), "multiple 'numeric' options specified");
    assert_eq!(
        fail("-A -t 10.1.1.1:80 -u 10.1.1.1:80"),
        "multiple 'service-address' options specified"
    );
    assert_eq!(
        fail("-L -c --stats"),
        "options conflicts in the list command"
    );
    assert_eq!(
        fail("-L --timeout --rate"),
        "options conflicts in the list command"
    );
    assert_eq!(
        fail("-L --daemon --thresholds"),
        "options conflicts in the list command"
    );
    assert_eq!(
        fail("-L --timeout --persistent-conn"),
        "options conflicts in the list command"
    );
}

#[test]
fn list_options() {
    assert_eq!(p("-L").unwrap(), Command::List(ListOptions::default()));
    assert_eq!(p("-l").unwrap(), Command::List(ListOptions::default()));
    assert_eq!(p("--list").unwrap(), Command::List(ListOptions::default()));
    let Command::List(o) = p("-Ln").unwrap() else {
        panic!()
    };
    assert!(o.numeric && !o.connection);
    let Command::List(o) = p("-Lnc").unwrap() else {
        panic!()
    };
    assert!(o.numeric && o.connection);
    assert_eq!(o.target(), ListTarget::Connections);
    let Command::List(o) = p("-L -n --stats --exact --nosort --sort").unwrap() else {
        panic!()
    };
    assert!(o.stats && o.exact && o.nosort && o.numeric);
    let Command::List(o) = p("-L -X --rate --thresholds --persistent-conn --tun-info").unwrap()
    else {
        panic!()
    };
    assert!(o.exact && o.rate && o.thresholds && o.persistent_conn && o.tun_info);
    assert_eq!(o.target(), ListTarget::All);
    let Command::List(o) = p("-L --timeout").unwrap() else {
        panic!()
    };
    assert_eq!(o.target(), ListTarget::Timeouts);
    let Command::List(o) = p("-L --daemon").unwrap() else {
        panic!()
    };
    assert_eq!(o.target(), ListTarget::Daemon);
    let Command::List(o) = p("-Lnt 10.1.1.1:80").unwrap() else {
        panic!()
    };
    assert_eq!(o.target(), ListTarget::Service(tcp([10, 1, 1, 1], 80)));
    let Command::List(o) = p("-L -c --persistent-conn").unwrap() else {
        panic!()
    };
    assert!(o.connection && o.persistent_conn);
    let Command::List(o) = p("-L --numeric --connection").unwrap() else {
        panic!()
    };
    assert!(o.numeric && o.connection);
}

#[test]
fn other_commands() {
    assert_eq!(p("-C").unwrap(), Command::Clear);
    assert_eq!(p("--clear").unwrap(), Command::Clear);
    assert_eq!(p("-Z").unwrap(), Command::Zero(None));
    assert_eq!(
        p("--zero -u 10.1.1.1:53").unwrap(),
        Command::Zero(Some(key(Protocol::Udp, [10, 1, 1, 1], 53)))
    );
    assert_eq!(p("-S").unwrap(), Command::Save { numeric: false });
    assert_eq!(p("-Sn").unwrap(), Command::Save { numeric: true });
    assert_eq!(p("--save -n").unwrap(), Command::Save { numeric: true });
    assert_eq!(p("-R").unwrap(), Command::Restore);
    assert_eq!(p("--restore").unwrap(), Command::Restore);
    assert_eq!(p("-h").unwrap(), Command::Help);
    assert_eq!(p("--help --bogus").unwrap(), Command::Help);
    assert_eq!(p("-v").unwrap(), Command::Version);
    assert_eq!(p("--version").unwrap(), Command::Version);
    assert_eq!(
        p("--set 900 120 300").unwrap(),
        Command::SetTimeouts(Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300
        })
    );
    assert_eq!(
        p("--set 0 0 5").unwrap(),
        Command::SetTimeouts(Timeouts {
            tcp: 0,
            tcp_fin: 0,
            udp: 5
        })
    );
    assert_eq!(fail("--set 1 2"), "--set option requires 3 timeout values");
    assert_eq!(fail("--set"), "--set option requires 3 timeout values");
    assert_eq!(fail("--set 1 x 3"), "invalid timeout value `x' specified");
    assert_eq!(
        fail("--set 1 2 2678401"),
        "invalid timeout value `2678401' specified"
    );
    assert_eq!(fail("--set 1 2 3 4"), "unexpected argument 4");
    assert_eq!(fail("-L foo"), "unexpected argument foo");
    assert_eq!(fail("-C -- -n"), "unexpected argument -n");
}

#[test]
fn command_position_and_popt_errors() {
    let th = ParseError::TryHelp("ipvsadm".into());
    assert_eq!(p(""), Err(th.clone()));
    assert_eq!(p("-n -L"), Err(th.clone()));
    assert_eq!(p("-t 10.1.1.1:80 -A"), Err(th.clone()));
    assert_eq!(p("--bogus"), Err(th.clone()));
    assert_eq!(p("-q"), Err(th.clone()));
    assert_eq!(p("--start-daemon"), Err(th.clone()));
    assert_eq!(p("foo"), Err(th.clone()));
    assert_eq!(
        th.to_string(),
        "Try `ipvsadm -h' or 'ipvsadm --help' for more information."
    );
    assert_eq!(th.exit_code(), 255);
    // a leading non-option is a left-over argument
    assert_eq!(fail("foo -L"), "unexpected argument foo");
    let e = p("-L --bogus").unwrap_err();
    assert_eq!(e.to_string(), "--bogus: unknown option");
    assert_eq!(e.exit_code(), 255);
    assert_eq!(p("-Lq").unwrap_err().to_string(), "-Lq: unknown option");
    assert_eq!(p("-A -t").unwrap_err().to_string(), "-t: missing argument");
    assert_eq!(p("-At").unwrap_err().to_string(), "-At: missing argument");
    assert_eq!(
        p("-L --stats=1").unwrap_err().to_string(),
        "--stats=1: option does not take an argument"
    );
    assert_eq!(fail("-L -A"), "invalid option `-A'");
    assert_eq!(fail("-LA"), "invalid option `-LA'");
    assert_eq!(fail("-L -h"), "invalid option `-h'");
    assert_eq!(fail("-A -t 10.1.1.1:80 -6"), "-6 used before -f\n");
    assert_eq!(ParseError::Fail("x".into()).exit_code(), 2);
}

#[test]
fn start_daemon_as_ipvsadm_sends_it() {
    use crate::model::{SyncDaemon, SyncState};
    let d = |s: &str| match p(s) {
        Ok(Command::StartDaemon(d)) => d,
        other => panic!("{s}: {other:?}"),
    };
    // Without options: interface eth0 (DEF_MCAST_IFN), syncid 0 (ipvsadm's
    // help says 255, but it sends its zeroed entry), the rest left to the
    // kernel.
    assert_eq!(
        d("--start-daemon master"),
        SyncDaemon::new(SyncState::Master, "eth0")
    );
    assert_eq!(
        d("--start-daemon backup --mcast-interface lo"),
        SyncDaemon::new(SyncState::Backup, "lo")
    );
    assert_eq!(
        d("--start-daemon=backup --mcast-interface="),
        SyncDaemon::new(SyncState::Backup, "eth0"),
        "an empty interface is the default one"
    );
    assert_eq!(
        d(
            "--start-daemon master --mcast-interface eth1 --syncid 3 --mcast-group 239.1.2.3 \
           --mcast-port 9000 --mcast-ttl 5 --sync-maxlen 1400"
        ),
        SyncDaemon {
            state: SyncState::Master,
            mcast_ifn: "eth1".into(),
            syncid: 3,
            sync_maxlen: 1400,
            mcast_group: Ipv4Addr::new(239, 1, 2, 3),
            mcast_port: 9000,
            mcast_ttl: 5,
        }
    );
    // strncpy(mcast_ifn, optarg, IP_VS_IFNAME_MAXLEN - 1)
    assert_eq!(
        d("--start-daemon master --mcast-interface abcdefghijklmnopqrstuvwxyz").mcast_ifn,
        "abcdefghijklmno"
    );
    assert_eq!(d("--start-daemon master --syncid 255").syncid, 255);
    assert_eq!(
        d("--start-daemon master --sync-maxlen 65507").sync_maxlen,
        65507
    );
    assert_eq!(
        d("--start-daemon master --mcast-port 65535").mcast_port,
        65535
    );
    assert_eq!(d("--start-daemon master --mcast-ttl 255").mcast_ttl, 255);
    assert_eq!(
        p("--start-daemon master --mcast-interface lo")
            .unwrap()
            .request(),
        Some(Request::StartDaemon {
            daemon: SyncDaemon::new(SyncState::Master, "lo")
        })
    );
    assert_eq!(
        p("--stop-daemon backup --syncid 1").unwrap(),
        Command::StopDaemon(SyncState::Backup)
    );
    assert_eq!(
        p("--stop-daemon master").unwrap().request(),
        Some(Request::StopDaemon {
            state: SyncState::Master
        })
    );
}

#[test]
fn daemon_option_errors() {
    assert_eq!(
        fail("--start-daemon foo"),
        "illegal start-daemon parameter specified"
    );
    assert_eq!(fail("--stop-daemon foo"), "illegal start_daemon specified");
    assert_eq!(
        fail("--start-daemon master --syncid 256"),
        "illegal syncid specified"
    );
    assert_eq!(
        fail("--start-daemon master --syncid -1"),
        "illegal syncid specified"
    );
    assert_eq!(
        fail("--start-daemon master --mcast-port 0"),
        "illegal mcast-port specified"
    );
    assert_eq!(
        fail("--start-daemon master --mcast-ttl 256"),
        "illegal mcast-ttl specified"
    );
    assert_eq!(
        fail("--start-daemon master --mcast-ttl 0"),
        "illegal mcast-ttl specified"
    );
    assert_eq!(
        fail("--start-daemon master --sync-maxlen 65508"),
        "illegal sync-maxlen specified"
    );
    assert_eq!(
        fail("--start-daemon master --sync-maxlen 0"),
        "illegal sync-maxlen specified"
    );
    assert_eq!(
        fail("--start-daemon master --mcast-group 10.0.0.1"),
        "invalid IPv4 mcast-group `10.0.0.1'"
    );
    assert_eq!(
        fail("--start-daemon master --mcast-group 224.0.0.081"),
        "invalid IPv4 mcast-group `224.0.0.081'"
    );
    assert_eq!(
        fail("--start-daemon master --mcast-group ::1"),
        "invalid IPv6 mcast-group `::1'"
    );
    // Checked where they stand: the bad group before the second command.
    assert_eq!(
        fail("--start-daemon master --mcast-group x -L"),
        "invalid IPv4 mcast-group `x'"
    );
    assert_eq!(
        fail("--start-daemon master --syncid 1 --syncid 2"),
        "multiple 'syncid' options specified"
    );
    assert_eq!(
        fail("--start-daemon master --daemon"),
        "Illegal 'daemon' option with the 'start-daemon' command"
    );
    assert_eq!(
        fail("--start-daemon master -t 10.1.1.1:80"),
        "Illegal 'service-address' option with the 'start-daemon' command"
    );
    assert_eq!(
        fail("--stop-daemon master --mcast-ttl 2"),
        "Illegal 'mcast-ttl' option with the 'stop-daemon' command"
    );
    assert_eq!(fail("--stop-daemon master x"), "unexpected argument x");
    assert_eq!(
        fail("--start-daemon master --stop-daemon backup"),
        "invalid option `backup'"
    );
    assert_eq!(
        p("--start-daemon").unwrap_err(),
        ParseError::TryHelp("ipvsadm".into())
    );
    assert_eq!(
        p("--start-daemon master --mcast-interface")
            .unwrap_err()
            .to_string(),
        "--mcast-interface: missing argument"
    );
}

#[test]
fn list_daemon_forms() {
    for s in [
        "-L --daemon",
        "-l --daemon",
        "--list --daemon",
        "-L --daemon -n",
        "-Ln --daemon --sort",
        "-L --daemon --syncid 3",
        "-L --daemon --exact --nosort --tun-info",
    ] {
        let Command::List(o) = p(s).unwrap() else {
            panic!("{s}")
        };
        assert_eq!(o.target(), ListTarget::Daemon, "{s}");
    }
    assert_eq!(
        fail("-L --daemon -c"),
        "The option 'daemon' conflicts with the 'connection' option in the 'list' command"
    );
    assert_eq!(
        fail("-L --daemon -t 10.1.1.1:80"),
        "The option 'daemon' conflicts with the 'service-address' option in the 'list' command"
    );
    assert_eq!(
        fail("-L --daemon --mcast-interface lo"),
        "Illegal 'mcast-interface' option with the 'list' command"
    );
    assert_eq!(
        fail("-L --daemon --stats"),
        "options conflicts in the list command"
    );
    assert_eq!(
        fail("-L --daemon --persistent-conn"),
        "options conflicts in the list command"
    );
    assert_eq!(
        fail("-L --daemon --daemon"),
        "multiple 'daemon' options specified"
    );
}

#[test]
fn fwmark_ipv6_and_sync_group() {
    assert!(matches!(
        p("-A -f 1 -6"),
        Ok(Command::AddService(s)) if s.key == ServiceKey::fwmark6(1)
    ));
    assert_eq!(fail("-A -f 0"), "invalid fwmark value `0' specified");
    assert_eq!(fail("-A -f x"), "invalid fwmark value `x' specified");
    assert_eq!(
        fail("-A -f 4294967296"),
        "invalid fwmark value `4294967296' specified"
    );
    // An IPv6 group parses as ipvsadm parses it; xvs's sync daemon only
    // speaks IPv4 multicast.
    let e = p("--start-daemon backup --mcast-group ff02::1").unwrap_err();
    assert_eq!(
        e,
        ParseError::Unsupported("IPv6 is not supported by xvs".into())
    );
    assert_eq!(e.exit_code(), 255);
    assert!(matches!(
        p("-A -t [::1]:80 -p 1 -M 64"),
        Ok(Command::AddService(s)) if s.netmask_prefix() == 64
    ));
    assert_eq!(
        fail("-A -t [::1]:80 -p 1 -M 129"),
        "illegal ipv6 netmask specified"
    );
}

#[test]
fn requests() {
    let c = p("-A -t 10.1.1.1:80 -s rr").unwrap();
    assert!(matches!(c.request(), Some(Request::AddService { .. })));
    assert_eq!(p("-C").unwrap().request(), Some(Request::Clear));
    assert_eq!(
        p("-Z").unwrap().request(),
        Some(Request::Zero { key: None })
    );
    assert_eq!(p("-L").unwrap().request(), None);
    assert_eq!(p("-S").unwrap().request(), None);
}

#[test]
fn restore_lines_are_split_as_ipvsadm_splits_them() {
    let text = "# saved\n\n-A -t 10.1.1.1:80 -s rr\n   \nipvsadm -a -t 10.1.1.1:80 -r 10.2.2.2:80 -m -w 1\r\n-A -u 10.1.1.1:53 'x y'\t\n";
    let lines: Vec<(usize, Vec<String>)> = restore_lines(text, "ipvsadm").collect();
    let argv = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        lines,
        vec![
            (1, argv(&["ipvsadm", "#", "saved"])),
            (3, argv(&["ipvsadm", "-A", "-t", "10.1.1.1:80", "-s", "rr"])),
            (
                5,
                argv(&[
                    "ipvsadm",
                    "-a",
                    "-t",
                    "10.1.1.1:80",
                    "-r",
                    "10.2.2.2:80",
                    "-m",
                    "-w",
                    "1"
                ])
            ),
            (6, argv(&["ipvsadm", "-A", "-u", "10.1.1.1:53", "'x", "y'"])),
        ]
    );
    let add = parse_restore_line(&lines[1].1, &names()).unwrap();
    assert!(matches!(add, Command::AddService { .. }));
    // A nested -R is refused; a comment word is no option.
    let e = parse_restore_line(&argv(&["xvsadm", "-R"]), &names()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Try `xvsadm -h' or 'xvsadm --help' for more information."
    );
    assert!(parse_restore_line(&lines[0].1, &names()).is_err());
}

#[test]
fn texts() {
    assert_eq!(
        version_text(),
        "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n"
    );
    let u = usage_text("xvsadm");
    assert!(u.starts_with("ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\nUsage:\n  xvsadm -A|E virtual-service [-s scheduler]"));
    assert!(u.contains("  xvsadm --start-daemon {master|backup} [daemon-options]\n"));
    assert!(u.contains("                                      the default scheduler is wlc.\n"));
    assert!(u.ends_with("  --mcast-ttl ttl                     Multicast TTL (default=1)\n"));
}

#[test]
fn ipv6_netmask_is_atoi_of_a_prefix_length() {
    use super::values::atoi;
    assert_eq!(atoi("64"), 64);
    assert_eq!(atoi(" +64abc"), 64);
    assert_eq!(atoi("-5"), -5);
    assert_eq!(atoi("ffff::"), 0);
    // (int) of strtol's long: 2^32 + 64 is 64.
    assert_eq!(atoi("4294967360"), 64);
    assert_eq!(atoi("99999999999999999999"), -1);
    let prefix = |args: &str| match p(args) {
        Ok(Command::AddService(s)) => s.netmask_prefix(),
        other => panic!("{args}: {other:?}"),
    };
    assert_eq!(prefix("-A -t [2001:db8::1]:80 -p -M +48"), 48);
    assert_eq!(prefix("-A -t [2001:db8::1]:80 -p -M 4294967360"), 64);
    assert_eq!(prefix("-A -t [2001:db8::1]:80 -p"), 128);
    assert_eq!(prefix("-A -t 10.0.0.1:80 -p -M 255.255.255.0"), 24);
    // The dest port of a bare or port-less dest is the service's.
    let Ok(Command::AddDest { dest, .. }) = p("-a -t [2001:db8::1]:80 -r 2001:db8::2 -m") else {
        panic!()
    };
    assert_eq!((dest.addr, dest.port), ("2001:db8::2".parse().unwrap(), 80));
}
