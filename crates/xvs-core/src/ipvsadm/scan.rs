//! [`parse`]: `process_options`. The first option must be a command, then each
//! option's checks in the order given, `--set`'s arguments and the
//! service/destination consistency checks.

use super::build::*;
use super::command::*;
use super::entry::*;
use super::popt::*;
use super::table::*;
use super::values::*;
use crate::model::{svc_flags, FwdMethod, SyncDaemon, SyncState, Timeouts};
use crate::names::{FileNames, Resolver};
use crate::sched::DEFAULT_SCHEDULER;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub(super) fn parse_inner(
    args: &[String],
    names: &dyn Resolver,
    reading_stdin: bool,
) -> Result<Command, ParseError> {
    let program = args
        .first()
        .cloned()
        .unwrap_or_else(|| "ipvsadm".to_string());
    let tryhelp = || ParseError::TryHelp(program.clone());
    if super::marks::is_mark_command(args) {
        return super::marks::parse(args, names);
    }
    let mut popt = Popt::new(args);
    let mut s = Scan {
        ce: Entry::new(),
        options: 0,
        list: ListOptions::default(),
        sched_flags_arg: String::new(),
    };
    let cmd = match first_command(&mut popt, &mut s.ce, &tryhelp)? {
        Start::Cmd(c) => c,
        Start::Done(c) => return Ok(c),
    };
    s.ce.cmd = Some(cmd);

    loop {
        let (tag, optarg) = match popt.next_opt() {
            Next::End => break,
            Next::Err(option, reason) => {
                return Err(ParseError::Popt {
                    option,
                    reason: reason.to_string(),
                })
            }
            Next::Opt(t, a) => (t, a),
        };
        s.option(tag, optarg, names, &popt)?;
    }
    let Scan {
        mut ce,
        options,
        list,
        sched_flags_arg,
    } = s;

    let mut leftover = popt.leftover.into_iter();
    if cmd == Cmd::Timeout {
        let (Some(a), Some(b), Some(c)) = (leftover.next(), leftover.next(), leftover.next())
        else {
            return Err(ParseError::fail("--set option requires 3 timeout values"));
        };
        ce.timeouts = Timeouts {
            tcp: parse_timeout(Some(&a), 0, MAX_TIMEOUT as i64)?,
            tcp_fin: parse_timeout(Some(&b), 0, MAX_TIMEOUT as i64)?,
            udp: parse_timeout(Some(&c), 0, MAX_TIMEOUT as i64)?,
        };
    }
    if let Some(extra) = leftover.next() {
        return Err(ParseError::fail(format!("unexpected argument {extra}")));
    }
    if !sched_flags_arg.is_empty() {
        ce.flags &= !(svc_flags::SCHED1 | svc_flags::SCHED2 | svc_flags::SCHED3);
        ce.flags |= parse_sched_flags(&ce.sched, &sched_flags_arg)?;
    }

    generic_opt_check(cmd, options)?;
    command_checks(cmd, &mut ce, options)?;

    if cmd == Cmd::Restore && reading_stdin {
        return Err(tryhelp());
    }

    build(cmd, &ce, options, list)
}

/// ipvsadm's first switch: the first option must be a command.
fn first_command(
    popt: &mut Popt,
    ce: &mut Entry,
    tryhelp: &dyn Fn() -> ParseError,
) -> Result<Start, ParseError> {
    let cmd = match popt.next_opt() {
        Next::Opt(tag, arg) => match tag {
            Tag::Add => Cmd::Add,
            Tag::Edit => Cmd::Edit,
            Tag::Del => Cmd::Del,
            Tag::AddDest => Cmd::AddDest,
            Tag::EditDest => Cmd::EditDest,
            Tag::DelDest => Cmd::DelDest,
            Tag::Clear => Cmd::Flush,
            Tag::List => Cmd::List,
            Tag::Zero => Cmd::Zero,
            Tag::Set => Cmd::Timeout,
            Tag::Restore => Cmd::Restore,
            Tag::Save => Cmd::Save,
            Tag::StartDaemon | Tag::StopDaemon => {
                let a = arg.unwrap_or_default();
                ce.daemon_state = match a.as_str() {
                    "master" => SyncState::Master,
                    "backup" => SyncState::Backup,
                    _ => {
                        return Err(ParseError::fail(if tag == Tag::StartDaemon {
                            "illegal start-daemon parameter specified"
                        } else {
                            "illegal start_daemon specified"
                        }))
                    }
                };
                if tag == Tag::StartDaemon {
                    Cmd::StartDaemon
                } else {
                    Cmd::StopDaemon
                }
            }
            Tag::Help => return Ok(Start::Done(Command::Help)),
            Tag::Version => return Ok(Start::Done(Command::Version)),
            _ => return Err(tryhelp()),
        },
        _ => return Err(tryhelp()),
    };
    Ok(Start::Cmd(cmd))
}

/// What the options after the command set: ipvsadm's `ce`, the option bits,
/// the list modifiers and the `--sched-flags` argument (applied once the
/// scheduler is known).
struct Scan {
    ce: Entry,
    options: u64,
    list: ListOptions,
    sched_flags_arg: String,
}

/// What the first option asks for.
enum Start {
    /// A command, whose options follow.
    Cmd(Cmd),
    /// `-h` or `-v`: the answer, nothing else is looked at.
    Done(Command),
}

impl Scan {
    /// One option after the command: the service and destination ones
    /// here, the others in [`Scan::list_option`] and [`Scan::sync_or_tunnel_option`].
    fn option(
        &mut self,
        tag: Tag,
        optarg: Option<String>,
        names: &dyn Resolver,
        popt: &Popt,
    ) -> Result<(), ParseError> {
        let oa = optarg.clone().unwrap_or_default();
        match tag {
            Tag::Tcp | Tag::Udp | Tag::Sctp => {
                set_option(&mut self.options, OPTC_SERVICE)?;
                self.ce.proto = match tag {
                    Tag::Tcp => Proto::Tcp,
                    Tag::Udp => Proto::Udp,
                    _ => Proto::Sctp,
                };
                let (addr, port) = parse_service(&oa, self.ce.proto, names).ok_or_else(|| {
                    ParseError::fail("illegal virtual server address[:port] specified")
                })?;
                self.ce.svc_af = af_of(&addr);
                if addr.is_ipv6() {
                    // parse_service: `svc->netmask = 128`.
                    self.ce.netmask6 = 128;
                }
                self.ce.addr = Some(addr);
                if let Some(p) = port {
                    self.ce.port = p;
                }
            }
            Tag::Fwmark => {
                set_option(&mut self.options, OPTC_SERVICE)?;
                self.ce.svc_af = Af::V4;
                self.ce.proto = Proto::Tcp;
                self.ce.fwmark = parse_fwmark(&oa)?;
            }
            Tag::Sched => {
                set_option(&mut self.options, OPTC_SCHEDULER)?;
                self.ce.sched = truncate(&oa, 15);
            }
            Tag::Persistent => {
                set_option(&mut self.options, OPTC_PERSISTENT)?;
                self.ce.flags |= svc_flags::PERSISTENT;
                self.ce.timeout = parse_timeout(optarg.as_deref(), 1, MAX_TIMEOUT as i64)?;
            }
            Tag::Netmask => {
                set_option(&mut self.options, OPTC_NETMASK)?;
                if self.ce.svc_af != Af::V6 {
                    self.ce.netmask =
                        inet_aton(&oa)
                            .or_else(|| names.host_addr(&oa))
                            .ok_or_else(|| {
                                ParseError::fail("illegal virtual server persistent mask specified")
                            })?;
                } else {
                    let m = atoi(&oa);
                    if !(1..=128).contains(&m) {
                        return Err(ParseError::fail("illegal ipv6 netmask specified"));
                    }
                    self.ce.netmask6 = m as u32;
                }
            }
            Tag::Real => {
                set_option(&mut self.options, OPTC_SERVER)?;
                let (addr, port) = parse_service(&oa, self.ce.proto, names).ok_or_else(|| {
                    ParseError::fail("illegal real server address[:port] specified")
                })?;
                self.ce.dest_af = af_of(&addr);
                self.ce.dest_addr = Some(addr);
                // Without a port, the service port known *so far* is used.
                self.ce.dest_port = port.unwrap_or(self.ce.port);
            }
            Tag::Ipip => {
                set_option(&mut self.options, OPTC_FORWARD)?;
                self.ce.fwd = FwdMethod::Tunnel;
            }
            Tag::Gate => {
                set_option(&mut self.options, OPTC_FORWARD)?;
                self.ce.fwd = FwdMethod::Route;
            }
            Tag::Masq => {
                set_option(&mut self.options, OPTC_FORWARD)?;
                self.ce.fwd = FwdMethod::Masq;
            }
            Tag::Weight => {
                set_option(&mut self.options, OPTC_WEIGHT)?;
                // Debian's ipvsadm 1.31 takes any non-negative int (upstream
                // stops at 65535); the kernel's field is an int.
                self.ce.weight = string_to_number(&oa, 0, i32::MAX as i64)
                    .ok_or_else(|| ParseError::fail("illegal weight specified"))?
                    as u32;
            }
            Tag::UThreshold => {
                set_option(&mut self.options, OPTC_UTHRESHOLD)?;
                self.ce.u_threshold = string_to_number(&oa, 0, i32::MAX as i64)
                    .ok_or_else(|| ParseError::fail("illegal u_threshold specified"))?
                    as u32;
            }
            Tag::LThreshold => {
                set_option(&mut self.options, OPTC_LTHRESHOLD)?;
                self.ce.l_threshold = string_to_number(&oa, 0, i32::MAX as i64)
                    .ok_or_else(|| ParseError::fail("illegal l_threshold specified"))?
                    as u32;
            }
            Tag::Ipv6 => {
                if self.ce.fwmark != 0 {
                    self.ce.svc_af = Af::V6;
                    self.ce.netmask6 = 128;
                } else {
                    return Err(ParseError::fail("-6 used before -f\n"));
                }
            }
            Tag::Ops => {
                set_option(&mut self.options, OPTC_ONEPACKET)?;
                self.ce.flags |= svc_flags::ONEPACKET;
            }
            Tag::Pe => {
                set_option(&mut self.options, OPTC_PERSISTENCE_ENGINE)?;
                self.ce.pe = truncate(&oa, 16);
            }
            Tag::SchedFlags => {
                set_option(&mut self.options, OPTC_SCHED_FLAGS)?;
                self.sched_flags_arg = truncate(&oa, 127);
            }
            _ => return self.list_option(tag, &oa, popt),
        }
        Ok(())
    }

    /// The list modifiers.
    fn list_option(&mut self, tag: Tag, oa: &str, popt: &Popt) -> Result<(), ParseError> {
        match tag {
            Tag::Connection => {
                set_option(&mut self.options, OPTC_CONNECTION)?;
                self.list.connection = true;
            }
            Tag::Numeric => {
                set_option(&mut self.options, OPTC_NUMERIC)?;
                self.list.numeric = true;
            }
            Tag::Timeout => {
                set_option(&mut self.options, OPTC_TIMEOUT)?;
                self.list.timeout = true;
            }
            Tag::Daemon => {
                set_option(&mut self.options, OPTC_DAEMON)?;
                self.list.daemon = true;
            }
            Tag::Stats => {
                set_option(&mut self.options, OPTC_STATS)?;
                self.list.stats = true;
            }
            Tag::Rate => {
                set_option(&mut self.options, OPTC_RATE)?;
                self.list.rate = true;
            }
            Tag::Thresholds => {
                set_option(&mut self.options, OPTC_THRESHOLDS)?;
                self.list.thresholds = true;
            }
            Tag::PersistentConn => {
                set_option(&mut self.options, OPTC_PERSISTENTCONN)?;
                self.list.persistent_conn = true;
            }
            Tag::NoSort => {
                set_option(&mut self.options, OPTC_NOSORT)?;
                self.list.nosort = true;
            }
            Tag::Sort => {}
            Tag::Exact => {
                set_option(&mut self.options, OPTC_EXACT)?;
                self.list.exact = true;
            }
            Tag::TunInfo => {
                set_option(&mut self.options, OPTC_TUN_INFO)?;
                self.list.tun_info = true;
            }
            _ => return self.sync_or_tunnel_option(tag, oa, popt),
        }
        Ok(())
    }

    /// The sync daemon's and the tunnel's options; anything else here is a
    /// second command, or -h or -v after the command.
    fn sync_or_tunnel_option(&mut self, tag: Tag, oa: &str, popt: &Popt) -> Result<(), ParseError> {
        match tag {
            Tag::McastIf => {
                set_option(&mut self.options, OPTC_MCAST)?;
                self.ce.mcast_ifn = truncate(oa, SyncDaemon::IFNAME_MAX);
            }
            Tag::SyncId => {
                set_option(&mut self.options, OPTC_SYNCID)?;
                self.ce.syncid = string_to_number(oa, 0, 255)
                    .ok_or_else(|| ParseError::fail("illegal syncid specified"))?
                    as u8;
            }
            Tag::McastGroup => {
                set_option(&mut self.options, OPTC_MCAST_GROUP)?;
                self.ce.mcast_group = Some(if oa.contains(':') {
                    match oa.parse::<Ipv6Addr>() {
                        Ok(a) if a.is_multicast() => IpAddr::V6(a),
                        _ => {
                            return Err(ParseError::fail(format!(
                                "invalid IPv6 mcast-group `{oa}'"
                            )))
                        }
                    }
                } else {
                    match oa.parse::<Ipv4Addr>() {
                        Ok(a) if a.is_multicast() => IpAddr::V4(a),
                        _ => {
                            return Err(ParseError::fail(format!(
                                "invalid IPv4 mcast-group `{oa}'"
                            )))
                        }
                    }
                });
            }
            Tag::McastPort => {
                set_option(&mut self.options, OPTC_MCAST_PORT)?;
                self.ce.mcast_port = string_to_number(oa, 1, 65535)
                    .ok_or_else(|| ParseError::fail("illegal mcast-port specified"))?
                    as u16;
            }
            Tag::McastTtl => {
                set_option(&mut self.options, OPTC_MCAST_TTL)?;
                self.ce.mcast_ttl = string_to_number(oa, 1, 255)
                    .ok_or_else(|| ParseError::fail("illegal mcast-ttl specified"))?
                    as u8;
            }
            Tag::SyncMaxlen => {
                set_option(&mut self.options, OPTC_SYNC_MAXLEN)?;
                self.ce.sync_maxlen = string_to_number(oa, 1, 65535 - 20 - 8)
                    .ok_or_else(|| ParseError::fail("illegal sync-maxlen specified"))?
                    as u16;
            }
            Tag::TunType => {
                set_option(&mut self.options, OPTC_TUN_TYPE)?;
                self.ce.tun_type = TUNNAMES
                    .iter()
                    .position(|&n| n == oa)
                    .ok_or_else(|| ParseError::fail("illegal tunnel type specified"))?;
            }
            Tag::TunPort => {
                set_option(&mut self.options, OPTC_TUN_PORT)?;
                self.ce.tun_port = string_to_number(oa, 1, 65535)
                    .ok_or_else(|| ParseError::fail("illegal tunnel port specified"))?
                    as u16;
            }
            Tag::TunNocsum => set_option(&mut self.options, OPTC_TUN_NOCSUM)?,
            Tag::TunCsum => {
                set_option(&mut self.options, OPTC_TUN_CSUM)?;
                self.ce.tun_flags |= 1;
            }
            Tag::TunRemcsum => {
                set_option(&mut self.options, OPTC_TUN_REMCSUM)?;
                self.ce.tun_flags |= 2;
            }
            // A second command, -h or -v after the command.
            _ => {
                return Err(ParseError::fail(format!(
                    "invalid option `{}'",
                    popt.current()
                )))
            }
        }
        Ok(())
    }
}

/// The service, destination and list checks after `commands_v_options`;
/// an added or edited service gets the default scheduler here.
fn command_checks(cmd: Cmd, ce: &mut Entry, options: u64) -> Result<(), ParseError> {
    if matches!(cmd, Cmd::Add | Cmd::Edit) {
        if ce.fwmark == 0 && ce.port == 0 && ce.flags & svc_flags::PERSISTENT == 0 {
            return Err(ParseError::fail(
                "Zero port specified for non-persistent service",
            ));
        }
        if ce.flags & svc_flags::ONEPACKET != 0 && ce.fwmark == 0 && ce.proto != Proto::Udp {
            return Err(ParseError::fail(
                "One-Packet Scheduling is only for UDP virtual services",
            ));
        }
        if ce.sched.is_empty() {
            ce.sched = DEFAULT_SCHEDULER.to_string();
        }
    }

    if matches!(cmd, Cmd::AddDest | Cmd::EditDest) {
        if ce.fwmark == 0 && matches!(ce.fwd, FwdMethod::Tunnel | FwdMethod::Route) {
            ce.dest_port = ce.port;
        }
        if ce.dest_af != ce.svc_af && ce.fwd != FwdMethod::Tunnel {
            return Err(ParseError::fail(
                "Different address family is allowed only for tunneling servers",
            ));
        }
        let tun_opts = [
            OPTC_TUN_TYPE,
            OPTC_TUN_PORT,
            OPTC_TUN_NOCSUM,
            OPTC_TUN_CSUM,
            OPTC_TUN_REMCSUM,
        ];
        if tun_opts.iter().any(|&o| has(options, o)) && ce.fwd != FwdMethod::Tunnel {
            return Err(ParseError::fail(
                "Tunnel options conflict with forward method",
            ));
        }
        tunnel_opt_check(ce.tun_type, options)?;
    }

    if cmd == Cmd::List {
        let any = |o: &[usize]| o.iter().any(|&x| has(options, x));
        if (any(&[OPTC_CONNECTION, OPTC_TIMEOUT, OPTC_DAEMON])
            && any(&[OPTC_STATS, OPTC_RATE, OPTC_THRESHOLDS]))
            || (any(&[OPTC_TIMEOUT, OPTC_DAEMON]) && has(options, OPTC_PERSISTENTCONN))
        {
            return Err(ParseError::fail("options conflicts in the list command"));
        }
    }
    Ok(())
}

/// Parses an ipvsadm command line. `args[0]` is the program name (used in
/// "Try `PROG -h' ..."), as `argv` in C. Host and service names come from
/// `/etc/hosts` and `/etc/services`.
pub fn parse(args: &[String]) -> Result<Command, ParseError> {
    parse_with(args, &FileNames::system())
}

/// [`parse`] with an explicit name resolver.
pub fn parse_with(args: &[String], names: &dyn Resolver) -> Result<Command, ParseError> {
    parse_inner(args, names, false)
}
