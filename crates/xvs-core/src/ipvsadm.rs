//! The ipvsadm 1.31 command-line grammar.
//!
//! [`parse`] follows `process_options()` in ipvsadm.c step by step: popt's
//! option scanning (short clusters such as `-Lnc`, `--long=value`, `-p`'s
//! optional argument, left-over arguments), the first option must be a
//! command, per-option checks in the order given, `--set` arguments,
//! `commands_v_options`, the service/destination consistency checks and the
//! tunnel option table. Error texts and exit codes are ipvsadm's:
//! `fail(2, ...)` exits 2, popt errors and "Try ..." exit 255 (ipvsadm
//! returns -1 from `main`).
//!
//! xvs only models IPv4 TCP/UDP services and IPv4 sync-daemon groups;
//! fwmark, SCTP and IPv6 parse exactly as in ipvsadm and then yield
//! [`ParseError::Unsupported`].

use crate::api::Request;
use crate::model::{
    svc_flags, Dest, FwdMethod, Protocol, Service, ServiceKey, SyncDaemon, SyncState, Timeouts,
    TunCsum, TunType,
};
use crate::names::{FileNames, Resolver};
use crate::sched::DEFAULT_SCHEDULER;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// ipvsadm's `MAX_TIMEOUT`: 31 days.
pub const MAX_TIMEOUT: u32 = 86400 * 31;

/// Persistence timeout used when `-p` has no value (`IPVS_SVC_PERSISTENT_TIMEOUT`).
pub const DEFAULT_PERSISTENT_TIMEOUT: u32 = 360;

/// The sync daemon's interface when `--start-daemon` has no
/// `--mcast-interface` (ipvsadm's `DEF_MCAST_IFN`).
pub const DEFAULT_MCAST_IFN: &str = "eth0";

/// Exit status of `fail(2, ...)`.
pub const EXIT_FAIL: i32 = 2;

/// Exit status when ipvsadm returns -1 (popt errors, "Try ...", kernel errors).
pub const EXIT_ERROR: i32 = 255;

/// The `-v` line, as ipvsadm 1.31 prints it.
pub fn version_text() -> String {
    "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n".to_string()
}

/// The `-h` text (`usage_exit`), with `program` as `argv[0]`.
pub fn usage_text(program: &str) -> String {
    let p = program;
    let mut s = version_text();
    s.push_str("Usage:\n");
    s.push_str(&format!("  {p} -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]\n"));
    s.push_str(&format!("  {p} -D virtual-service\n"));
    s.push_str(&format!("  {p} -C\n"));
    s.push_str(&format!("  {p} -R\n"));
    s.push_str(&format!("  {p} -S [-n]\n"));
    s.push_str(&format!(
        "  {p} -a|e virtual-service -r server-address [options]\n"
    ));
    s.push_str(&format!("  {p} -d virtual-service -r server-address\n"));
    s.push_str(&format!("  {p} -L|l [virtual-service] [options]\n"));
    s.push_str(&format!("  {p} -Z [virtual-service]\n"));
    s.push_str(&format!("  {p} --set tcp tcpfin udp\n"));
    s.push_str(&format!(
        "  {p} --start-daemon {{master|backup}} [daemon-options]\n"
    ));
    s.push_str(&format!("  {p} --stop-daemon {{master|backup}}\n"));
    s.push_str(&format!("  {p} -h\n\n"));
    s.push_str(concat!(
        "Commands:\n",
        "Either long or short options are allowed.\n",
        "  --add-service     -A        add virtual service with options\n",
        "  --edit-service    -E        edit virtual service with options\n",
        "  --delete-service  -D        delete virtual service\n",
        "  --clear           -C        clear the whole table\n",
        "  --restore         -R        restore rules from stdin\n",
        "  --save            -S        save rules to stdout\n",
        "  --add-server      -a        add real server with options\n",
        "  --edit-server     -e        edit real server with options\n",
        "  --delete-server   -d        delete real server\n",
        "  --list            -L|-l     list the table\n",
        "  --zero            -Z        zero counters in a service or all services\n",
        "  --set tcp tcpfin udp        set connection timeout values\n",
        "  --start-daemon              start connection sync daemon\n",
        "  --stop-daemon               stop connection sync daemon\n",
        "  --help            -h        display this help message\n\n",
        "virtual-service:\n",
        "  --tcp-service|-t  service-address   service-address is host[:port]\n",
        "  --udp-service|-u  service-address   service-address is host[:port]\n",
        "  --sctp-service    service-address   service-address is host[:port]\n",
        "  --fwmark-service|-f fwmark          fwmark is an integer greater than zero\n",
        "\n",
        "Options:\n",
        "  --ipv6         -6                   fwmark entry uses IPv6\n",
        "  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh,\n",
        "                                      the default scheduler is wlc.\n",
        "  --pe            engine              alternate persistence engine may be sip,\n",
        "                                      not set by default.\n",
        "  --persistent   -p [timeout]         persistent service\n",
        "  --netmask      -M netmask           persistent granularity mask\n",
        "  --real-server  -r server-address    server-address is host (and port)\n",
        "  --gatewaying   -g                   gatewaying (direct routing) (default)\n",
        "  --ipip         -i                   ipip encapsulation (tunneling)\n",
        "  --masquerading -m                   masquerading (NAT)\n",
        "  --tun-type      type                one of ipip|gue|gre,\n",
        "                                      the default tunnel type is ipip.\n",
        "  --tun-port      port                tunnel destination port\n",
        "  --tun-nocsum                        tunnel encapsulation without checksum\n",
        "  --tun-csum                          tunnel encapsulation with checksum\n",
        "  --tun-remcsum                       tunnel encapsulation with remote checksum\n",
        "  --weight       -w weight            capacity of real server\n",
        "  --u-threshold  -x uthreshold        upper threshold of connections\n",
        "  --l-threshold  -y lthreshold        lower threshold of connections\n",
        "  --connection   -c                   output of current IPVS connections\n",
        "  --timeout                           output of timeout (tcp tcpfin udp)\n",
        "  --daemon                            output of daemon information\n",
        "  --stats                             output of statistics information\n",
        "  --rate                              output of rate information\n",
        "  --exact                             expand numbers (display exact values)\n",
        "  --thresholds                        output of thresholds information\n",
        "  --persistent-conn                   output of persistent connection info\n",
        "  --tun-info                          output of tunnel information\n",
        "  --nosort                            disable sorting output of service/server entries\n",
        "  --sort                              does nothing, for backwards compatibility\n",
        "  --ops          -o                   one-packet scheduling\n",
        "  --numeric      -n                   numeric output of addresses and ports\n",
        "  --sched-flags  -b flags             scheduler flags (comma-separated)\n",
        "Daemon Options:\n",
        "  --syncid sid                        syncid for connection sync (default=255)\n",
        "  --sync-maxlen length                Max sync message length (default=1472)\n",
        "  --mcast-interface interface         multicast interface for connection sync\n",
        "  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)\n",
        "  --mcast-port port                   UDP port (default=8848)\n",
        "  --mcast-ttl ttl                     Multicast TTL (default=1)\n",
    ));
    s
}

/// List modifiers of `-L` (and `-S -n`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// `-n`: no name resolution.
    pub numeric: bool,
    /// `-c`: list connections.
    pub connection: bool,
    /// `--timeout`: list timeouts.
    pub timeout: bool,
    /// `--daemon`: list sync daemons.
    pub daemon: bool,
    /// `--stats`.
    pub stats: bool,
    /// `--rate`.
    pub rate: bool,
    /// `--thresholds`.
    pub thresholds: bool,
    /// `--persistent-conn`.
    pub persistent_conn: bool,
    /// `--nosort`.
    pub nosort: bool,
    /// `--exact` (`-X`).
    pub exact: bool,
    /// `--tun-info`.
    pub tun_info: bool,
    /// `-L -t|-u service`: list only this service.
    pub service: Option<ServiceKey>,
}

/// What `-L` shows, in ipvsadm's order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListTarget {
    /// `-c`.
    Connections,
    /// `-t/-u`: one service.
    Service(ServiceKey),
    /// `--timeout`.
    Timeouts,
    /// `--daemon`.
    Daemon,
    /// Everything.
    All,
}

impl ListOptions {
    /// Which listing ipvsadm would produce for these options.
    pub fn target(&self) -> ListTarget {
        if self.connection {
            ListTarget::Connections
        } else if let Some(k) = self.service {
            ListTarget::Service(k)
        } else if self.timeout {
            ListTarget::Timeouts
        } else if self.daemon {
            ListTarget::Daemon
        } else {
            ListTarget::All
        }
    }
}

/// A parsed ipvsadm command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `-A`.
    AddService(Service),
    /// `-E` (ipvsadm sends the whole service: unspecified fields get defaults).
    EditService(Service),
    /// `-D`.
    DelService(ServiceKey),
    /// `-C`.
    Clear,
    /// `-a`.
    AddDest {
        /// Service.
        key: ServiceKey,
        /// New real server.
        dest: Dest,
    },
    /// `-e` (unspecified fields get defaults, e.g. weight 1).
    EditDest {
        /// Service.
        key: ServiceKey,
        /// Real server settings.
        dest: Dest,
    },
    /// `-d`.
    DelDest {
        /// Service.
        key: ServiceKey,
        /// Real server address.
        addr: Ipv4Addr,
        /// Real server port.
        port: u16,
    },
    /// `-L` / `-l`.
    List(ListOptions),
    /// `-Z [service]`.
    Zero(Option<ServiceKey>),
    /// `--set tcp tcpfin udp`.
    SetTimeouts(Timeouts),
    /// `-S [-n]`.
    Save {
        /// `-n`.
        numeric: bool,
    },
    /// `-R`: read commands from stdin.
    Restore,
    /// `--start-daemon master|backup [daemon-options]`: the daemon as
    /// ipvsadm sends it (unset options zero, the interface `eth0` when
    /// not given).
    StartDaemon(SyncDaemon),
    /// `--stop-daemon master|backup`.
    StopDaemon(SyncState),
    /// `-h`: print [`usage_text`] to stdout, exit 0.
    Help,
    /// `-v`: print [`version_text`] to stdout, exit 0.
    Version,
}

impl Command {
    /// The control request for a change (of the table, or starting or
    /// stopping a sync daemon); `None` for commands that are not changes
    /// (list, save, restore, help, version).
    pub fn request(&self) -> Option<Request> {
        Some(match self {
            Command::AddService(s) => Request::AddService { service: s.clone() },
            Command::EditService(s) => Request::EditService { service: s.clone() },
            Command::DelService(k) => Request::DelService { key: *k },
            Command::Clear => Request::Clear,
            Command::AddDest { key, dest } => Request::AddDest {
                key: *key,
                dest: dest.clone(),
            },
            Command::EditDest { key, dest } => Request::EditDest {
                key: *key,
                dest: dest.clone(),
            },
            Command::DelDest { key, addr, port } => Request::DelDest {
                key: *key,
                addr: *addr,
                port: *port,
            },
            Command::Zero(k) => Request::Zero { key: *k },
            Command::SetTimeouts(t) => Request::SetTimeouts { timeouts: *t },
            Command::StartDaemon(d) => Request::StartDaemon { daemon: d.clone() },
            Command::StopDaemon(state) => Request::StopDaemon { state: *state },
            _ => return None,
        })
    }
}

/// Why a command line was refused; `Display` is ipvsadm's exact text
/// (without the trailing newline ipvsadm adds).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// `fail(2, ...)`: exit status 2.
    #[error("{0}")]
    Fail(String),
    /// `tryhelp_exit(argv[0], -1)`: exit status 255.
    #[error("Try `{0} -h' or '{0} --help' for more information.")]
    TryHelp(String),
    /// A popt error after the command: `"<argv element>: <reason>"`, exit 255.
    #[error("{option}: {reason}")]
    Popt {
        /// The offending command-line element.
        option: String,
        /// popt's `poptStrerror` text.
        reason: String,
    },
    /// Valid for ipvsadm but not implemented by xvs; exit 255.
    #[error("{0}")]
    Unsupported(String),
}

impl ParseError {
    /// The exit status ipvsadm uses for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            ParseError::Fail(_) => EXIT_FAIL,
            _ => EXIT_ERROR,
        }
    }

    fn fail(msg: impl Into<String>) -> Self {
        ParseError::Fail(msg.into())
    }
}

// ---------------------------------------------------------------------------
// Tables transcribed from ipvsadm.c.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Add = 0,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
}

const CMDNAMES: [&str; 14] = [
    "add-service",
    "edit-service",
    "delete-service",
    "flush",
    "list",
    "add-server",
    "delete-server",
    "edit-server",
    "set",
    "start-daemon",
    "stop-daemon",
    "restore",
    "save",
    "zero",
];

const OPTC_NUMERIC: usize = 0;
const OPTC_CONNECTION: usize = 1;
const OPTC_SERVICE: usize = 2;
const OPTC_SCHEDULER: usize = 3;
const OPTC_PERSISTENT: usize = 4;
const OPTC_NETMASK: usize = 5;
const OPTC_SERVER: usize = 6;
const OPTC_FORWARD: usize = 7;
const OPTC_WEIGHT: usize = 8;
const OPTC_UTHRESHOLD: usize = 9;
const OPTC_LTHRESHOLD: usize = 10;
const OPTC_MCAST: usize = 11;
const OPTC_TIMEOUT: usize = 12;
const OPTC_DAEMON: usize = 13;
const OPTC_STATS: usize = 14;
const OPTC_RATE: usize = 15;
const OPTC_THRESHOLDS: usize = 16;
const OPTC_PERSISTENTCONN: usize = 17;
const OPTC_NOSORT: usize = 18;
const OPTC_SYNCID: usize = 19;
const OPTC_EXACT: usize = 20;
const OPTC_ONEPACKET: usize = 21;
const OPTC_PERSISTENCE_ENGINE: usize = 22;
const OPTC_SCHED_FLAGS: usize = 23;
const OPTC_MCAST_GROUP: usize = 24;
const OPTC_MCAST_PORT: usize = 25;
const OPTC_MCAST_TTL: usize = 26;
const OPTC_SYNC_MAXLEN: usize = 27;
const OPTC_TUN_INFO: usize = 28;
const OPTC_TUN_TYPE: usize = 29;
const OPTC_TUN_PORT: usize = 30;
const OPTC_TUN_NOCSUM: usize = 31;
const OPTC_TUN_CSUM: usize = 32;
const OPTC_TUN_REMCSUM: usize = 33;
const NUMBER_OF_OPT: usize = 34;

const OPTNAMES: [&str; NUMBER_OF_OPT] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
];

/// `commands_v_options`: one 34-character row per command, columns in
/// `OPTC_*` order. '+' compulsory, 'x' illegal, '1' exclusive, ' ' optional.
const COMMANDS_V_OPTIONS: [&[u8; NUMBER_OF_OPT]; 14] = [
    b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx", // ADD
    b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx", // EDIT
    b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // DEL
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // FLUSH
    b" 11xxxxxxxxx11       xxxxxxx xxxxx", // LIST
    b"xx+xxx+    xxxxxxxxxxxxxxxxxx     ", // ADDSRV
    b"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx", // DELSRV
    b"xx+xxx+    xxxxxxxxxxxxxxxxxx     ", // EDITSRV
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // TIMEOUT
    b"xxxxxxxxxxx xxxxxxx xxxx    xxxxxx", // STARTD
    b"xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxx", // STOPD
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // RESTORE
    b" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // SAVE
    b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // ZERO
];

const TUNNAMES: [&str; 3] = ["ipip", "gue", "gre"];
const TUNOPTS: [usize; 4] = [
    OPTC_TUN_PORT,
    OPTC_TUN_NOCSUM,
    OPTC_TUN_CSUM,
    OPTC_TUN_REMCSUM,
];
/// `tunnel_types_v_options`, columns tun-port, nocsum, csum, remcsum.
const TUNNEL_TYPES_V_OPTIONS: [&[u8; 4]; 3] = [b"xxxx", b"+111", b"x11x"];

// ---------------------------------------------------------------------------
// popt emulation.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Add,
    Edit,
    Del,
    Clear,
    List,
    Zero,
    AddDest,
    EditDest,
    DelDest,
    Set,
    Help,
    Version,
    Restore,
    Save,
    StartDaemon,
    StopDaemon,
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Sched,
    Persistent,
    Netmask,
    Real,
    Masq,
    Ipip,
    Gate,
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    McastIf,
    SyncId,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arg {
    No,
    Required,
    Optional,
}

/// ipvsadm's popt option table: (long name, short name, argument, tag).
const OPTIONS: &[(&str, Option<char>, Arg, Tag)] = &[
    ("add-service", Some('A'), Arg::No, Tag::Add),
    ("edit-service", Some('E'), Arg::No, Tag::Edit),
    ("delete-service", Some('D'), Arg::No, Tag::Del),
    ("clear", Some('C'), Arg::No, Tag::Clear),
    ("list", Some('L'), Arg::No, Tag::List),
    ("list", Some('l'), Arg::No, Tag::List),
    ("zero", Some('Z'), Arg::No, Tag::Zero),
    ("add-server", Some('a'), Arg::No, Tag::AddDest),
    ("edit-server", Some('e'), Arg::No, Tag::EditDest),
    ("delete-server", Some('d'), Arg::No, Tag::DelDest),
    ("set", None, Arg::No, Tag::Set),
    ("help", Some('h'), Arg::No, Tag::Help),
    ("version", Some('v'), Arg::No, Tag::Version),
    ("restore", Some('R'), Arg::No, Tag::Restore),
    ("save", Some('S'), Arg::No, Tag::Save),
    ("start-daemon", None, Arg::Required, Tag::StartDaemon),
    ("stop-daemon", None, Arg::Required, Tag::StopDaemon),
    ("tcp-service", Some('t'), Arg::Required, Tag::Tcp),
    ("udp-service", Some('u'), Arg::Required, Tag::Udp),
    ("sctp-service", None, Arg::Required, Tag::Sctp),
    ("fwmark-service", Some('f'), Arg::Required, Tag::Fwmark),
    ("scheduler", Some('s'), Arg::Required, Tag::Sched),
    ("persistent", Some('p'), Arg::Optional, Tag::Persistent),
    ("netmask", Some('M'), Arg::Required, Tag::Netmask),
    ("real-server", Some('r'), Arg::Required, Tag::Real),
    ("masquerading", Some('m'), Arg::No, Tag::Masq),
    ("ipip", Some('i'), Arg::No, Tag::Ipip),
    ("gatewaying", Some('g'), Arg::No, Tag::Gate),
    ("weight", Some('w'), Arg::Required, Tag::Weight),
    ("u-threshold", Some('x'), Arg::Required, Tag::UThreshold),
    ("l-threshold", Some('y'), Arg::Required, Tag::LThreshold),
    ("numeric", Some('n'), Arg::No, Tag::Numeric),
    ("connection", Some('c'), Arg::No, Tag::Connection),
    ("mcast-interface", None, Arg::Required, Tag::McastIf),
    ("syncid", None, Arg::Required, Tag::SyncId),
    ("timeout", None, Arg::No, Tag::Timeout),
    ("daemon", None, Arg::No, Tag::Daemon),
    ("stats", None, Arg::No, Tag::Stats),
    ("rate", None, Arg::No, Tag::Rate),
    ("thresholds", None, Arg::No, Tag::Thresholds),
    ("persistent-conn", None, Arg::No, Tag::PersistentConn),
    ("nosort", None, Arg::No, Tag::NoSort),
    ("sort", None, Arg::No, Tag::Sort),
    ("exact", Some('X'), Arg::No, Tag::Exact),
    ("ipv6", Some('6'), Arg::No, Tag::Ipv6),
    ("ops", Some('o'), Arg::No, Tag::Ops),
    ("pe", None, Arg::Required, Tag::Pe),
    ("sched-flags", Some('b'), Arg::Required, Tag::SchedFlags),
    ("mcast-group", None, Arg::Required, Tag::McastGroup),
    ("mcast-port", None, Arg::Required, Tag::McastPort),
    ("mcast-ttl", None, Arg::Required, Tag::McastTtl),
    ("sync-maxlen", None, Arg::Required, Tag::SyncMaxlen),
    ("tun-info", None, Arg::No, Tag::TunInfo),
    ("tun-type", None, Arg::Required, Tag::TunType),
    ("tun-port", None, Arg::Required, Tag::TunPort),
    ("tun-nocsum", None, Arg::No, Tag::TunNocsum),
    ("tun-csum", None, Arg::No, Tag::TunCsum),
    ("tun-remcsum", None, Arg::No, Tag::TunRemcsum),
];

const POPT_BADOPT: &str = "unknown option";
const POPT_NOARG: &str = "missing argument";
const POPT_UNWANTEDARG: &str = "option does not take an argument";

enum Next {
    Opt(Tag, Option<String>),
    End,
    Err(String, &'static str),
}

/// A scanner with popt's rules: options and left-over arguments may be
/// interleaved, `--` ends options, a lone `-` is an argument, short options
/// cluster, an argument may be glued to a short option (`-w5`, `-w=5`) or
/// follow `=` on a long one, and an optional argument (`-p`) takes the next
/// element only when it does not start with `-`.
struct Popt<'a> {
    args: &'a [String],
    next: usize,
    /// Remaining characters of the short-option cluster being scanned.
    cluster: Option<String>,
    rest_leftover: bool,
    leftover: Vec<String>,
}

impl<'a> Popt<'a> {
    fn new(args: &'a [String]) -> Self {
        Popt {
            args,
            next: 1,
            cluster: None,
            rest_leftover: false,
            leftover: Vec::new(),
        }
    }

    fn current(&self) -> String {
        self.args
            .get(self.next.saturating_sub(1))
            .cloned()
            .unwrap_or_default()
    }

    fn take_arg(&mut self, arg: Arg, glued: Option<String>) -> Result<Option<String>, Next> {
        match arg {
            Arg::No => Ok(None),
            _ if glued.is_some() => Ok(glued),
            Arg::Required => match self.args.get(self.next) {
                Some(a) => {
                    self.next += 1;
                    Ok(Some(a.clone()))
                }
                None => Err(Next::Err(self.current(), POPT_NOARG)),
            },
            Arg::Optional => match self.args.get(self.next) {
                Some(a) if !a.starts_with('-') => {
                    self.next += 1;
                    Ok(Some(a.clone()))
                }
                _ => Ok(None),
            },
        }
    }

    fn next_opt(&mut self) -> Next {
        loop {
            if let Some(cl) = self.cluster.take() {
                let mut chars = cl.chars();
                let Some(c) = chars.next() else { continue };
                let mut rest: String = chars.collect();
                if let Some(r) = rest.strip_prefix('=') {
                    rest = r.to_string();
                }
                let Some(&(_, _, arg, tag)) = OPTIONS.iter().find(|o| o.1 == Some(c)) else {
                    return Next::Err(self.current(), POPT_BADOPT);
                };
                let glued = if arg != Arg::No && !rest.is_empty() {
                    Some(std::mem::take(&mut rest))
                } else {
                    None
                };
                if !rest.is_empty() {
                    self.cluster = Some(rest);
                }
                return match self.take_arg(arg, glued) {
                    Ok(a) => Next::Opt(tag, a),
                    Err(e) => e,
                };
            }
            let Some(s) = self.args.get(self.next).cloned() else {
                return Next::End;
            };
            self.next += 1;
            if self.rest_leftover || !s.starts_with('-') || s == "-" {
                self.leftover.push(s);
                continue;
            }
            if s == "--" {
                self.rest_leftover = true;
                continue;
            }
            if let Some(long) = s.strip_prefix("--") {
                let (name, val) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (long, None),
                };
                let Some(&(_, _, arg, tag)) = OPTIONS.iter().find(|o| o.0 == name) else {
                    return Next::Err(s, POPT_BADOPT);
                };
                if arg == Arg::No && val.is_some() {
                    return Next::Err(s, POPT_UNWANTEDARG);
                }
                return match self.take_arg(arg, val) {
                    Ok(a) => Next::Opt(tag, a),
                    Err(e) => e,
                };
            }
            self.cluster = Some(s[1..].to_string());
        }
    }
}

// ---------------------------------------------------------------------------
// Number and address parsing as in ipvsadm.c / glibc.

/// `string_to_number`: `strtol` base 10 (leading blanks and a sign
/// allowed), the whole string must be consumed, value in `min..=max`.
fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: i64 = 0;
    for b in digits.bytes() {
        v = v.checked_mul(10)?.checked_add((b - b'0') as i64)?;
    }
    let v = if neg { -v } else { v };
    (min..=max).contains(&v).then_some(v)
}

/// glibc `inet_aton`: 1 to 4 parts, each decimal, octal (`0`) or hex
/// (`0x`); trailing text is allowed after whitespace.
pub fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut parts: Vec<u64> = Vec::new();
    loop {
        if !b.get(i).is_some_and(|c| c.is_ascii_digit()) {
            return None;
        }
        let mut base = 10;
        if b[i] == b'0' {
            base = 8;
            i += 1;
            if matches!(b.get(i), Some(b'x') | Some(b'X')) {
                base = 16;
                i += 1;
            }
        }
        let mut val: u64 = 0;
        while let Some(&c) = b.get(i) {
            let d = match c {
                b'0'..=b'9' => {
                    if base == 8 && c >= b'8' {
                        return None;
                    }
                    (c - b'0') as u64
                }
                b'a'..=b'f' if base == 16 => (c - b'a' + 10) as u64,
                b'A'..=b'F' if base == 16 => (c - b'A' + 10) as u64,
                _ => break,
            };
            val = val * base + d;
            if val > 0xffff_ffff {
                return None;
            }
            i += 1;
        }
        if b.get(i) == Some(&b'.') {
            if parts.len() >= 3 || val > 0xff {
                return None;
            }
            parts.push(val);
            i += 1;
            continue;
        }
        parts.push(val);
        break;
    }
    if let Some(&c) = b.get(i) {
        if !c.is_ascii_whitespace() {
            return None;
        }
    }
    let n = parts.len();
    let last = parts[n - 1];
    let limit = [0xffff_ffffu64, 0xff_ffff, 0xffff, 0xff][n - 1];
    if last > limit {
        return None;
    }
    let mut v: u64 = 0;
    for (k, p) in parts[..n - 1].iter().enumerate() {
        v |= p << (24 - 8 * k);
    }
    Some(Ipv4Addr::from((v | last) as u32))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    None,
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    fn model(self) -> Option<Protocol> {
        match self {
            Proto::Tcp => Some(Protocol::Tcp),
            Proto::Udp => Some(Protocol::Udp),
            _ => None,
        }
    }
}

/// `parse_service`: `None` is SERVICE_NONE; otherwise the address and the
/// port when one was given.
fn parse_service(buf: &str, proto: Proto, names: &dyn Resolver) -> Option<(IpAddr, Option<u16>)> {
    if buf.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut host = buf;
    let mut portp: Option<&str> = None;
    if let Some(inner) = buf.strip_prefix('[') {
        let close = inner.find(']')?;
        host = &inner[..close];
        let after = &inner[close + 1..];
        portp = Some(after.strip_prefix(':')?);
    }
    if let Ok(a6) = host.parse::<Ipv6Addr>() {
        // The bracket form keeps its port; a bare IPv6 literal has none.
        let port = match portp {
            Some(p) => Some(parse_port(p, proto, names)?),
            None => None,
        };
        return Some((IpAddr::V6(a6), port));
    }
    // As in ipvsadm, the port is searched again in what is left of the
    // string, so "[1.2.3.4]:80" loses its port.
    portp = None;
    if let Some(idx) = host.rfind(':') {
        portp = Some(&host[idx + 1..]);
        host = &host[..idx];
    }
    let addr = inet_aton(host).or_else(|| names.host_addr(host))?;
    let port = match portp {
        Some(p) => Some(parse_port(p, proto, names)?),
        None => None,
    };
    Some((IpAddr::V4(addr), port))
}

fn parse_port(p: &str, proto: Proto, names: &dyn Resolver) -> Option<u16> {
    if let Some(n) = string_to_number(p, 0, 65535) {
        return Some(n as u16);
    }
    names.service_port(p, proto.model()?)
}

fn parse_timeout(buf: Option<&str>, min: i64, max: i64) -> Result<u32, ParseError> {
    let Some(b) = buf else {
        return Ok(DEFAULT_PERSISTENT_TIMEOUT);
    };
    string_to_number(b, min, max)
        .map(|v| v as u32)
        .ok_or_else(|| ParseError::fail(format!("invalid timeout value `{b}' specified")))
}

fn parse_fwmark(buf: &str) -> Result<u32, ParseError> {
    match string_to_number(buf, 1, u32::MAX as i64) {
        Some(v) => Ok(v as u32),
        None => Err(ParseError::fail(format!(
            "invalid fwmark value `{buf}' specified"
        ))),
    }
}

fn parse_sched_flags(sched: &str, arg: &str) -> Result<u32, ParseError> {
    let sched = if sched.is_empty() {
        DEFAULT_SCHEDULER
    } else {
        sched
    };
    let mut flags = 0;
    let tokens: Vec<&str> = arg.split(',').filter(|t| !t.is_empty()).collect();
    if tokens.is_empty() {
        // strtok finds no token; ipvsadm would dereference NULL here.
        return Err(ParseError::fail("invalid scheduler flag `'"));
    }
    for flag in tokens {
        let (bit, needs) = match flag {
            "flag-1" => (svc_flags::SCHED1, None),
            "flag-2" => (svc_flags::SCHED2, None),
            "flag-3" => (svc_flags::SCHED3, None),
            "sh-fallback" => (svc_flags::SCHED1, Some("sh")),
            "sh-port" => (svc_flags::SCHED2, Some("sh")),
            "mh-fallback" => (svc_flags::SCHED1, Some("mh")),
            "mh-port" => (svc_flags::SCHED2, Some("mh")),
            _ => return Err(ParseError::fail(format!("invalid scheduler flag `{flag}'"))),
        };
        flags |= bit;
        if let Some(s) = needs {
            if s != sched {
                return Err(ParseError::fail(format!(
                    "incompatible scheduler flag `{flag}'"
                )));
            }
        }
    }
    Ok(flags)
}

/// Keeps at most `n` bytes, as `strncpy` into ipvsadm's fixed buffers does.
fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

// ---------------------------------------------------------------------------
// The command entry being built (`struct ipvs_command_entry`).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Af {
    Unspec,
    V4,
    V6,
}

fn af_of(a: &IpAddr) -> Af {
    match a {
        IpAddr::V4(_) => Af::V4,
        IpAddr::V6(_) => Af::V6,
    }
}

struct Entry {
    cmd: Option<Cmd>,
    svc_af: Af,
    proto: Proto,
    addr: Option<IpAddr>,
    port: u16,
    fwmark: u32,
    sched: String,
    flags: u32,
    timeout: u32,
    netmask: Ipv4Addr,
    pe: String,
    dest_af: Af,
    dest_addr: Option<IpAddr>,
    dest_port: u16,
    fwd: FwdMethod,
    weight: u32,
    u_threshold: u32,
    l_threshold: u32,
    tun_type: usize,
    tun_port: u16,
    tun_flags: u32,
    timeouts: Timeouts,
    /// `ce.daemon`: state, `--mcast-interface`, `--syncid`,
    /// `--sync-maxlen`, `--mcast-group`, `--mcast-port`, `--mcast-ttl`.
    daemon_state: SyncState,
    mcast_ifn: String,
    syncid: u8,
    sync_maxlen: u16,
    mcast_group: Option<IpAddr>,
    mcast_port: u16,
    mcast_ttl: u8,
}

impl Entry {
    fn new() -> Self {
        Entry {
            cmd: None,
            svc_af: Af::Unspec,
            proto: Proto::None,
            addr: None,
            port: 0,
            fwmark: 0,
            sched: String::new(),
            flags: 0,
            timeout: 0,
            netmask: Ipv4Addr::BROADCAST,
            pe: String::new(),
            dest_af: Af::Unspec,
            dest_addr: None,
            dest_port: 0,
            fwd: FwdMethod::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tun_type: 0,
            tun_port: 0,
            tun_flags: 0,
            timeouts: Timeouts {
                tcp: 0,
                tcp_fin: 0,
                udp: 0,
            },
            daemon_state: SyncState::Master,
            mcast_ifn: String::new(),
            syncid: 0,
            sync_maxlen: 0,
            mcast_group: None,
            mcast_port: 0,
            mcast_ttl: 0,
        }
    }
}

fn set_option(options: &mut u64, optc: usize) -> Result<(), ParseError> {
    let bit = 1u64 << optc;
    if *options & bit != 0 {
        return Err(ParseError::fail(format!(
            "multiple '{}' options specified",
            OPTNAMES[optc]
        )));
    }
    *options |= bit;
    Ok(())
}

fn has(options: u64, optc: usize) -> bool {
    options & (1u64 << optc) != 0
}

fn generic_opt_check(cmd: Cmd, options: u64) -> Result<(), ParseError> {
    let i = cmd as usize;
    let row = COMMANDS_V_OPTIONS[i];
    let mut last = 0;
    let mut count = 0;
    for (j, &rule) in row.iter().enumerate() {
        if !has(options, j) {
            if rule == b'+' {
                return Err(ParseError::fail(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    OPTNAMES[j], CMDNAMES[i]
                )));
            }
        } else {
            if rule == b'x' {
                return Err(ParseError::fail(format!(
                    "Illegal '{}' option with the '{}' command",
                    OPTNAMES[j], CMDNAMES[i]
                )));
            }
            if rule == b'1' {
                count += 1;
                if count == 1 {
                    last = j;
                    continue;
                }
                return Err(ParseError::fail(format!(
                    "The option '{}' conflicts with the '{}' option in the '{}' command",
                    OPTNAMES[j], OPTNAMES[last], CMDNAMES[i]
                )));
            }
        }
    }
    Ok(())
}

fn tunnel_opt_check(tun_type: usize, options: u64) -> Result<(), ParseError> {
    let row = TUNNEL_TYPES_V_OPTIONS[tun_type];
    let mut last = 0;
    let mut count = 0;
    for (j, &rule) in row.iter().enumerate() {
        let k = TUNOPTS[j];
        if !has(options, k) {
            if rule == b'+' {
                return Err(ParseError::fail(format!(
                    "You need to supply the '{}' option for the '{}' tunnel type",
                    OPTNAMES[k], TUNNAMES[tun_type]
                )));
            }
        } else {
            if rule == b'x' {
                return Err(ParseError::fail(format!(
                    "Illegal '{}' option with the '{}' tunnel type",
                    OPTNAMES[k], TUNNAMES[tun_type]
                )));
            }
            if rule == b'1' {
                count += 1;
                if count == 1 {
                    last = k;
                    continue;
                }
                return Err(ParseError::fail(format!(
                    "The option '{}' conflicts with the '{}' option in the '{}' tunnel type",
                    OPTNAMES[k], OPTNAMES[last], TUNNAMES[tun_type]
                )));
            }
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

fn parse_inner(
    args: &[String],
    names: &dyn Resolver,
    reading_stdin: bool,
) -> Result<Command, ParseError> {
    let program = args
        .first()
        .cloned()
        .unwrap_or_else(|| "ipvsadm".to_string());
    let tryhelp = || ParseError::TryHelp(program.clone());
    let mut popt = Popt::new(args);
    let mut ce = Entry::new();
    let mut options: u64 = 0;
    let mut list = ListOptions::default();
    let mut sched_flags_arg = String::new();

    // The first option must be a command (ipvsadm's first switch).
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
            Tag::Help => return Ok(Command::Help),
            Tag::Version => return Ok(Command::Version),
            _ => return Err(tryhelp()),
        },
        _ => return Err(tryhelp()),
    };
    ce.cmd = Some(cmd);

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
        let oa = optarg.clone().unwrap_or_default();
        match tag {
            Tag::Tcp | Tag::Udp | Tag::Sctp => {
                set_option(&mut options, OPTC_SERVICE)?;
                ce.proto = match tag {
                    Tag::Tcp => Proto::Tcp,
                    Tag::Udp => Proto::Udp,
                    _ => Proto::Sctp,
                };
                let (addr, port) = parse_service(&oa, ce.proto, names).ok_or_else(|| {
                    ParseError::fail("illegal virtual server address[:port] specified")
                })?;
                ce.svc_af = af_of(&addr);
                ce.addr = Some(addr);
                if let Some(p) = port {
                    ce.port = p;
                }
            }
            Tag::Fwmark => {
                set_option(&mut options, OPTC_SERVICE)?;
                ce.svc_af = Af::V4;
                ce.proto = Proto::Tcp;
                ce.fwmark = parse_fwmark(&oa)?;
            }
            Tag::Sched => {
                set_option(&mut options, OPTC_SCHEDULER)?;
                ce.sched = truncate(&oa, 15);
            }
            Tag::Persistent => {
                set_option(&mut options, OPTC_PERSISTENT)?;
                ce.flags |= svc_flags::PERSISTENT;
                ce.timeout = parse_timeout(optarg.as_deref(), 1, MAX_TIMEOUT as i64)?;
            }
            Tag::Netmask => {
                set_option(&mut options, OPTC_NETMASK)?;
                if ce.svc_af != Af::V6 {
                    ce.netmask =
                        inet_aton(&oa)
                            .or_else(|| names.host_addr(&oa))
                            .ok_or_else(|| {
                                ParseError::fail("illegal virtual server persistent mask specified")
                            })?;
                } else {
                    // atoi: leading number, anything else is 0
                    let digits: String = oa
                        .trim_start()
                        .chars()
                        .take_while(|c| c.is_ascii_digit())
                        .collect();
                    let m: i64 = digits.parse().unwrap_or(0);
                    if !(1..=128).contains(&m) {
                        return Err(ParseError::fail("illegal ipv6 netmask specified"));
                    }
                }
            }
            Tag::Real => {
                set_option(&mut options, OPTC_SERVER)?;
                let (addr, port) = parse_service(&oa, ce.proto, names).ok_or_else(|| {
                    ParseError::fail("illegal real server address[:port] specified")
                })?;
                ce.dest_af = af_of(&addr);
                ce.dest_addr = Some(addr);
                // Without a port, the service port known *so far* is used.
                ce.dest_port = port.unwrap_or(ce.port);
            }
            Tag::Ipip => {
                set_option(&mut options, OPTC_FORWARD)?;
                ce.fwd = FwdMethod::Tunnel;
            }
            Tag::Gate => {
                set_option(&mut options, OPTC_FORWARD)?;
                ce.fwd = FwdMethod::Route;
            }
            Tag::Masq => {
                set_option(&mut options, OPTC_FORWARD)?;
                ce.fwd = FwdMethod::Masq;
            }
            Tag::Weight => {
                set_option(&mut options, OPTC_WEIGHT)?;
                // Debian's ipvsadm 1.31 takes any non-negative int (upstream
                // stops at 65535); the kernel's field is an int.
                ce.weight = string_to_number(&oa, 0, i32::MAX as i64)
                    .ok_or_else(|| ParseError::fail("illegal weight specified"))?
                    as u32;
            }
            Tag::UThreshold => {
                set_option(&mut options, OPTC_UTHRESHOLD)?;
                ce.u_threshold = string_to_number(&oa, 0, i32::MAX as i64)
                    .ok_or_else(|| ParseError::fail("illegal u_threshold specified"))?
                    as u32;
            }
            Tag::LThreshold => {
                set_option(&mut options, OPTC_LTHRESHOLD)?;
                ce.l_threshold = string_to_number(&oa, 0, i32::MAX as i64)
                    .ok_or_else(|| ParseError::fail("illegal l_threshold specified"))?
                    as u32;
            }
            Tag::Connection => {
                set_option(&mut options, OPTC_CONNECTION)?;
                list.connection = true;
            }
            Tag::Numeric => {
                set_option(&mut options, OPTC_NUMERIC)?;
                list.numeric = true;
            }
            Tag::McastIf => {
                set_option(&mut options, OPTC_MCAST)?;
                ce.mcast_ifn = truncate(&oa, SyncDaemon::IFNAME_MAX);
            }
            Tag::SyncId => {
                set_option(&mut options, OPTC_SYNCID)?;
                ce.syncid = string_to_number(&oa, 0, 255)
                    .ok_or_else(|| ParseError::fail("illegal syncid specified"))?
                    as u8;
            }
            Tag::Timeout => {
                set_option(&mut options, OPTC_TIMEOUT)?;
                list.timeout = true;
            }
            Tag::Daemon => {
                set_option(&mut options, OPTC_DAEMON)?;
                list.daemon = true;
            }
            Tag::Stats => {
                set_option(&mut options, OPTC_STATS)?;
                list.stats = true;
            }
            Tag::Rate => {
                set_option(&mut options, OPTC_RATE)?;
                list.rate = true;
            }
            Tag::Thresholds => {
                set_option(&mut options, OPTC_THRESHOLDS)?;
                list.thresholds = true;
            }
            Tag::PersistentConn => {
                set_option(&mut options, OPTC_PERSISTENTCONN)?;
                list.persistent_conn = true;
            }
            Tag::NoSort => {
                set_option(&mut options, OPTC_NOSORT)?;
                list.nosort = true;
            }
            Tag::Sort => {}
            Tag::Exact => {
                set_option(&mut options, OPTC_EXACT)?;
                list.exact = true;
            }
            Tag::Ipv6 => {
                if ce.fwmark != 0 {
                    ce.svc_af = Af::V6;
                } else {
                    return Err(ParseError::fail("-6 used before -f\n"));
                }
            }
            Tag::Ops => {
                set_option(&mut options, OPTC_ONEPACKET)?;
                ce.flags |= svc_flags::ONEPACKET;
            }
            Tag::Pe => {
                set_option(&mut options, OPTC_PERSISTENCE_ENGINE)?;
                ce.pe = truncate(&oa, 16);
            }
            Tag::SchedFlags => {
                set_option(&mut options, OPTC_SCHED_FLAGS)?;
                sched_flags_arg = truncate(&oa, 127);
            }
            Tag::McastGroup => {
                set_option(&mut options, OPTC_MCAST_GROUP)?;
                ce.mcast_group = Some(if oa.contains(':') {
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
                set_option(&mut options, OPTC_MCAST_PORT)?;
                ce.mcast_port = string_to_number(&oa, 1, 65535)
                    .ok_or_else(|| ParseError::fail("illegal mcast-port specified"))?
                    as u16;
            }
            Tag::McastTtl => {
                set_option(&mut options, OPTC_MCAST_TTL)?;
                ce.mcast_ttl = string_to_number(&oa, 1, 255)
                    .ok_or_else(|| ParseError::fail("illegal mcast-ttl specified"))?
                    as u8;
            }
            Tag::SyncMaxlen => {
                set_option(&mut options, OPTC_SYNC_MAXLEN)?;
                ce.sync_maxlen = string_to_number(&oa, 1, 65535 - 20 - 8)
                    .ok_or_else(|| ParseError::fail("illegal sync-maxlen specified"))?
                    as u16;
            }
            Tag::TunInfo => {
                set_option(&mut options, OPTC_TUN_INFO)?;
                list.tun_info = true;
            }
            Tag::TunType => {
                set_option(&mut options, OPTC_TUN_TYPE)?;
                ce.tun_type = TUNNAMES
                    .iter()
                    .position(|&n| n == oa)
                    .ok_or_else(|| ParseError::fail("illegal tunnel type specified"))?;
            }
            Tag::TunPort => {
                set_option(&mut options, OPTC_TUN_PORT)?;
                ce.tun_port = string_to_number(&oa, 1, 65535)
                    .ok_or_else(|| ParseError::fail("illegal tunnel port specified"))?
                    as u16;
            }
            Tag::TunNocsum => set_option(&mut options, OPTC_TUN_NOCSUM)?,
            Tag::TunCsum => {
                set_option(&mut options, OPTC_TUN_CSUM)?;
                ce.tun_flags |= 1;
            }
            Tag::TunRemcsum => {
                set_option(&mut options, OPTC_TUN_REMCSUM)?;
                ce.tun_flags |= 2;
            }
            // A second command, -h or -v after the command.
            _ => {
                return Err(ParseError::fail(format!(
                    "invalid option `{}'",
                    popt.current()
                )))
            }
        }
    }

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

    if cmd == Cmd::Restore && reading_stdin {
        return Err(tryhelp());
    }

    build(cmd, &ce, options, list)
}

fn unsupported(what: &str) -> ParseError {
    ParseError::Unsupported(format!("{what} not supported by xvs"))
}

/// The model key of the service in `ce`, or why xvs cannot represent it.
fn service_key(ce: &Entry) -> Result<ServiceKey, ParseError> {
    if ce.fwmark != 0 {
        return Err(unsupported("fwmark services are"));
    }
    let proto = match ce.proto {
        Proto::Tcp => Protocol::Tcp,
        Proto::Udp => Protocol::Udp,
        _ => return Err(unsupported("SCTP services are")),
    };
    match ce.addr {
        Some(IpAddr::V4(addr)) => Ok(ServiceKey {
            proto,
            addr,
            port: ce.port,
        }),
        _ => Err(unsupported("IPv6 is")),
    }
}

fn dest_addr(ce: &Entry) -> Result<Ipv4Addr, ParseError> {
    match ce.dest_addr {
        Some(IpAddr::V4(a)) => Ok(a),
        _ => Err(unsupported("IPv6 is")),
    }
}

fn build_dest(ce: &Entry) -> Result<Dest, ParseError> {
    Ok(Dest {
        addr: dest_addr(ce)?,
        port: ce.dest_port,
        fwd: ce.fwd,
        weight: ce.weight,
        u_threshold: ce.u_threshold,
        l_threshold: ce.l_threshold,
        tun_type: match ce.tun_type {
            1 => TunType::Gue,
            2 => TunType::Gre,
            _ => TunType::Ipip,
        },
        tun_port: ce.tun_port,
        tun_csum: match ce.tun_flags {
            1 => TunCsum::Csum,
            2 => TunCsum::RemCsum,
            _ => TunCsum::NoCsum,
        },
    })
}

fn build(cmd: Cmd, ce: &Entry, options: u64, mut list: ListOptions) -> Result<Command, ParseError> {
    let service = || -> Result<Service, ParseError> {
        Ok(Service {
            key: service_key(ce)?,
            scheduler: ce.sched.clone(),
            flags: ce.flags,
            timeout: ce.timeout,
            netmask: ce.netmask,
            pe_name: (!ce.pe.is_empty()).then(|| ce.pe.clone()),
        })
    };
    Ok(match cmd {
        Cmd::Add => Command::AddService(service()?),
        Cmd::Edit => Command::EditService(service()?),
        Cmd::Del => Command::DelService(service_key(ce)?),
        Cmd::Flush => Command::Clear,
        Cmd::AddDest => Command::AddDest {
            key: service_key(ce)?,
            dest: build_dest(ce)?,
        },
        Cmd::EditDest => Command::EditDest {
            key: service_key(ce)?,
            dest: build_dest(ce)?,
        },
        Cmd::DelDest => Command::DelDest {
            key: service_key(ce)?,
            addr: dest_addr(ce)?,
            port: ce.dest_port,
        },
        Cmd::List => {
            if has(options, OPTC_SERVICE) {
                list.service = Some(service_key(ce)?);
            }
            Command::List(list)
        }
        Cmd::Zero => Command::Zero(if has(options, OPTC_SERVICE) {
            Some(service_key(ce)?)
        } else {
            None
        }),
        Cmd::Timeout => Command::SetTimeouts(ce.timeouts),
        Cmd::Save => Command::Save {
            numeric: list.numeric,
        },
        Cmd::Restore => Command::Restore,
        Cmd::StartDaemon => {
            let mcast_group = match ce.mcast_group {
                None => Ipv4Addr::UNSPECIFIED,
                Some(IpAddr::V4(a)) => a,
                Some(IpAddr::V6(_)) => return Err(unsupported("IPv6 is")),
            };
            Command::StartDaemon(SyncDaemon {
                state: ce.daemon_state,
                // process_options: an empty interface is DEF_MCAST_IFN.
                mcast_ifn: if ce.mcast_ifn.is_empty() {
                    DEFAULT_MCAST_IFN.to_string()
                } else {
                    ce.mcast_ifn.clone()
                },
                syncid: ce.syncid,
                sync_maxlen: ce.sync_maxlen,
                mcast_group,
                mcast_port: ce.mcast_port,
                mcast_ttl: ce.mcast_ttl,
            })
        }
        Cmd::StopDaemon => Command::StopDaemon(ce.daemon_state),
    })
}

/// The argument vectors `ipvsadm -R` makes of its input, as its
/// `config_stream_read` does: each line split at spaces, tabs and
/// carriage returns, every word `ipvsadm` dropped, `program` put first;
/// a line without words is skipped. Nothing else is special: `#` and
/// quotes are plain characters (the `ipvsadm-restore` script drops
/// comment lines before ipvsadm sees them). Returns (line number, argv).
pub fn restore_lines<'a>(
    text: &'a str,
    program: &'a str,
) -> impl Iterator<Item = (usize, Vec<String>)> + 'a {
    text.lines().enumerate().filter_map(move |(i, line)| {
        let words: Vec<String> = line
            .split([' ', '\t', '\r'])
            .filter(|w| !w.is_empty() && *w != "ipvsadm")
            .map(str::to_string)
            .collect();
        if words.is_empty() {
            return None;
        }
        let mut argv = vec![program.to_string()];
        argv.extend(words);
        Some((i + 1, argv))
    })
}

/// Parses one line of `-R` input ([`restore_lines`]) as ipvsadm's
/// `process_options` does while reading stdin (a nested `-R` is refused).
pub fn parse_restore_line(argv: &[String], names: &dyn Resolver) -> Result<Command, ParseError> {
    parse_inner(argv, names, true)
}

#[cfg(test)]
#[path = "ipvsadm_tests.rs"]
mod tests;
