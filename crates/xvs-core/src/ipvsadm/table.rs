//! Tables transcribed from ipvsadm.c: the commands, the option bits and
//! their names, `commands_v_options`, the tunnel option table, and popt's
//! option table (long name, short name, argument, tag).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cmd {
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

pub(super) const CMDNAMES: [&str; 14] = [
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

pub(super) const OPTC_NUMERIC: usize = 0;
pub(super) const OPTC_CONNECTION: usize = 1;
pub(super) const OPTC_SERVICE: usize = 2;
pub(super) const OPTC_SCHEDULER: usize = 3;
pub(super) const OPTC_PERSISTENT: usize = 4;
pub(super) const OPTC_NETMASK: usize = 5;
pub(super) const OPTC_SERVER: usize = 6;
pub(super) const OPTC_FORWARD: usize = 7;
pub(super) const OPTC_WEIGHT: usize = 8;
pub(super) const OPTC_UTHRESHOLD: usize = 9;
pub(super) const OPTC_LTHRESHOLD: usize = 10;
pub(super) const OPTC_MCAST: usize = 11;
pub(super) const OPTC_TIMEOUT: usize = 12;
pub(super) const OPTC_DAEMON: usize = 13;
pub(super) const OPTC_STATS: usize = 14;
pub(super) const OPTC_RATE: usize = 15;
pub(super) const OPTC_THRESHOLDS: usize = 16;
pub(super) const OPTC_PERSISTENTCONN: usize = 17;
pub(super) const OPTC_NOSORT: usize = 18;
pub(super) const OPTC_SYNCID: usize = 19;
pub(super) const OPTC_EXACT: usize = 20;
pub(super) const OPTC_ONEPACKET: usize = 21;
pub(super) const OPTC_PERSISTENCE_ENGINE: usize = 22;
pub(super) const OPTC_SCHED_FLAGS: usize = 23;
pub(super) const OPTC_MCAST_GROUP: usize = 24;
pub(super) const OPTC_MCAST_PORT: usize = 25;
pub(super) const OPTC_MCAST_TTL: usize = 26;
pub(super) const OPTC_SYNC_MAXLEN: usize = 27;
pub(super) const OPTC_TUN_INFO: usize = 28;
pub(super) const OPTC_TUN_TYPE: usize = 29;
pub(super) const OPTC_TUN_PORT: usize = 30;
pub(super) const OPTC_TUN_NOCSUM: usize = 31;
pub(super) const OPTC_TUN_CSUM: usize = 32;
pub(super) const OPTC_TUN_REMCSUM: usize = 33;
pub(super) const NUMBER_OF_OPT: usize = 34;

pub(super) const OPTNAMES: [&str; NUMBER_OF_OPT] = [
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
pub(super) const COMMANDS_V_OPTIONS: [&[u8; NUMBER_OF_OPT]; 14] = [
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

pub(super) const TUNNAMES: [&str; 3] = ["ipip", "gue", "gre"];
pub(super) const TUNOPTS: [usize; 4] = [
    OPTC_TUN_PORT,
    OPTC_TUN_NOCSUM,
    OPTC_TUN_CSUM,
    OPTC_TUN_REMCSUM,
];
/// `tunnel_types_v_options`, columns tun-port, nocsum, csum, remcsum.
pub(super) const TUNNEL_TYPES_V_OPTIONS: [&[u8; 4]; 3] = [b"xxxx", b"+111", b"x11x"];

// ---------------------------------------------------------------------------
// popt's option table.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tag {
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
pub(super) enum Arg {
    No,
    Required,
    Optional,
}

/// ipvsadm's popt option table: (long name, short name, argument, tag).
pub(super) const OPTIONS: &[(&str, Option<char>, Arg, Tag)] = &[
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

/// The long names of ipvsadm 1.31's options, without their dashes, in
/// popt's table order (`list` twice, for `-L` and `-l`). `xvsadm`'s man
/// page test reads them, so an option added here is not left undocumented.
pub fn long_options() -> impl Iterator<Item = &'static str> {
    OPTIONS.iter().map(|o| o.0)
}
