/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * xvs: the ONE definition of every structure shared between the XDP
 * program (xvs.bpf.c) and user space (the Rust crate uses the types that
 * libbpf-cargo's skeleton generates from this file's BTF, with size
 * assertions). Byte order is in the type: __be32/__be16 are network order,
 * everything else is host order. All padding is explicit.
 */
#ifndef XVS_H
#define XVS_H

#include <linux/types.h>

/* An address of either family, in network order, as every shared struct
 * holds one (ABI 5). IPv4: the first word, the other three zero (keys are
 * hashed as bytes: zero a key whole before filling it). Where the family
 * is not the service's or the key's own, an `af` byte beside names it. */
union xvs_addr {
	__be32 v6[4]; /* first: the Rust skeleton's Default sets the first member */
	__be32 v4;
	__u8 b[16];
};

/* The `af` bytes: Linux's AF_INET and AF_INET6. */
#define XVS_AF_INET 2
#define XVS_AF_INET6 10

/* Forwarding methods (xvs_dest.fwd, xvs_conn.fwd). */
enum xvs_fwd {
	XVS_FWD_MASQ = 0,
	XVS_FWD_ROUTE = 1,  /* DR: Ethernet header rewritten only */
	XVS_FWD_TUNNEL = 2, /* TUN: IPIP or GUE encapsulation */
};

/* xvs_dest.tun_type: the numbering of IPVS's IP_VS_CONN_F_TUNNEL_TYPE_*. */
enum xvs_tun_type {
	XVS_TUN_IPIP = 0,
	XVS_TUN_GUE = 1,
	XVS_TUN_GRE = 2, /* not implemented: refused by user space */
};

/* xvs_dest.tun_flags */
enum xvs_tun_flags {
	XVS_TUN_F_CSUM = 1, /* GUE: compute the outer UDP checksum */
};

/* xvs_dest.flags */
enum xvs_dest_flags {
	XVS_DEST_F_AVAILABLE = 1, /* slot holds a configured dest */
};

/* xvs_dest_conns.flags (runtime state, changed by program and xvsd) */
enum xvs_dest_rt_flags {
	XVS_DEST_F_OVERLOAD = 1, /* IP_VS_DEST_F_OVERLOAD: -x/-y thresholds */
};

/* xvs_conn.flags */
enum xvs_conn_flags {
	XVS_CONN_F_REPLY = 1,   /* reply entry (keyed by the real server tuple) */
	XVS_CONN_F_PERSIST = 2, /* controlled by a persistence template */
	XVS_CONN_F_OPS = 4,     /* one-packet (-o) NAT reply entry: no forward entry */
	XVS_CONN_F_ASSURED = 8, /* forward entry: has marked its template assured */
};

/* xvs_tmpl.flags. */
enum xvs_tmpl_flags {
	/* A connection it controls got ESTABLISHED (TCP) or an answer (UDP):
	 * IPVS's IP_VS_CTPL_S_ASSURED, "ASSURED" in -Lnc. */
	XVS_TMPL_F_ASSURED = 1,
};

/* Schedulers (xvs_svc.sched), in the order of xvs_core::sched::SCHEDULERS. */
enum xvs_sched {
	XVS_SCHED_RR = 0,
	XVS_SCHED_WRR = 1,
	XVS_SCHED_LC = 2,
	XVS_SCHED_WLC = 3,
	XVS_SCHED_LBLC = 4,
	XVS_SCHED_LBLCR = 5,
	XVS_SCHED_DH = 6,
	XVS_SCHED_SH = 7,
	XVS_SCHED_SED = 8,
	XVS_SCHED_NQ = 9,
	XVS_SCHED_FO = 10,
	XVS_SCHED_OVF = 11,
	XVS_SCHED_MH = 12,
	XVS_SCHED_TWOS = 13,
	XVS_SCHED_MAX = 14,
};

/* IP_VS_SVC_F_* (xvs_svc.flags), as xvs_core::model::svc_flags. */
#define XVS_SVC_F_PERSISTENT 0x0001
#define XVS_SVC_F_ONEPACKET 0x0004
#define XVS_SVC_F_SCHED1 0x0008 /* sh-fallback / mh-fallback */
#define XVS_SVC_F_SCHED2 0x0010 /* sh-port / mh-port */
/* xvs's own bit: the service's persistence engine is sip (--pe sip;
 * IPVS keeps the engine beside the flags). */
#define XVS_SVC_F_PE_SIP 0x10000

/* A table slot (dh/sh/mh) without a dest. */
#define XVS_NO_DEST 0xffffffffu
/* Dests per service the program can scan (lc, wlc, ..., lblc, lblcr). */
#define XVS_SVC_DESTS_MAX 256
/* Members of an lblcr replica set. */
#define XVS_LBLCR_SET_MAX 16
/* Buckets of the dh and sh tables; the mh table is prime sized (ring_len). */
#define XVS_HASH_TAB_SIZE 256
/* The largest mh table the program accepts. */
#define XVS_MH_TAB_MAX 131071
/* lblc/lblcr expiration (sysctl lblc(r)_expiration default, 24 h). */
#define XVS_LBLC_EXPIRATION_NS (24ULL * 3600 * 1000000000ULL)

/* IPVS TCP states (IP_VS_TCP_S_*), the UDP pseudo state and the SCTP
 * states. Same numbering as xvs_core::model::ConnState. */
enum xvs_state {
	XVS_S_NONE = 0,
	XVS_S_ESTABLISHED = 1,
	XVS_S_SYN_SENT = 2,
	XVS_S_SYN_RECV = 3,
	XVS_S_FIN_WAIT = 4,
	XVS_S_TIME_WAIT = 5,
	XVS_S_CLOSE = 6,
	XVS_S_CLOSE_WAIT = 7,
	XVS_S_LAST_ACK = 8,
	XVS_S_LISTEN = 9,
	XVS_S_SYNACK = 10,
	XVS_S_UDP = 11,
	XVS_S_TCP_LAST = 12, /* columns of the TCP table (UDP's included) */
	/* IPVS SCTP states (IP_VS_SCTP_S_*), kernel number + 16: one
	 * numbering for every protocol's connections, so an entry's state
	 * alone names its timeout. 12 is the model's ASSURED. */
	XVS_S_SCTP_NONE = 16,
	XVS_S_SCTP_INIT1 = 17,
	XVS_S_SCTP_INIT = 18,
	XVS_S_SCTP_COOKIE_SENT = 19,
	XVS_S_SCTP_COOKIE_REPLIED = 20,
	XVS_S_SCTP_COOKIE_WAIT = 21,
	XVS_S_SCTP_COOKIE = 22,
	XVS_S_SCTP_COOKIE_ECHOED = 23,
	XVS_S_SCTP_ESTABLISHED = 24,
	XVS_S_SCTP_SHUTDOWN_SENT = 25,
	XVS_S_SCTP_SHUTDOWN_RECEIVED = 26,
	XVS_S_SCTP_SHUTDOWN_ACK_SENT = 27,
	XVS_S_SCTP_REJECTED = 28,
	XVS_S_SCTP_CLOSED = 29,
	XVS_S_LAST = 30,
};

/* SVC_MAP key: family, protocol, virtual address and port. A fwmark
 * service (-f) is { htonl(mark), 0, 0, af }: protocol 0 (IPPROTO_IP) is
 * never an address service's, and the key is IPVS's own fwmark-template
 * vaddr; -f 1 and -f 1 -6 are two services, as in IPVS. */
struct xvs_svc_key {
	union xvs_addr addr;
	__be16 port;
	__u8 proto; /* IPPROTO_TCP / IPPROTO_UDP / IPPROTO_SCTP; 0: fwmark */
	__u8 af;    /* XVS_AF_INET / XVS_AF_INET6 */
};

/* FWM_ADDR key: the mark classifier's address node, an LPM trie key over
 * (proto, af, pad, daddr); prefixlen = 32 + the address prefix length (the
 * protocol, family and pad bytes always match in full; an IPv4 prefix
 * covers the first word of daddr only). */
struct xvs_fwm_addr_key {
	__u32 prefixlen;
	__u8 proto;
	__u8 af;
	__u8 pad[2];
	union xvs_addr daddr;
};

/* FWM_ADDR value: the node's port set (FWM_PORT under set_id) and the
 * mark of a port without an entry (0: not marked). */
struct xvs_fwm_addr {
	__u32 set_id;
	__u32 any_port_mark;
};

/* FWM_PORT key (value: the mark, __u32). */
struct xvs_fwm_port_key {
	__u32 set_id;
	__be16 dport;
	__u16 pad;
};

/* Sizes of the classifier maps (xvs_core::fwmark::MAX_NODES and
 * MAX_PORT_ENTRIES, asserted in Rust). */
#define XVS_FWM_NODES_MAX 4096
#define XVS_FWM_PORTS_MAX 65536

/* SVC_MAP value. Generation `gen` of the service's scheduling data: the
 * ring (rr, wrr) or bucket table (dh, sh, mh) of `ring_len` dest ids in
 * RING_MAP under (id, gen << 31 | idx), and the dest list in kernel list
 * order in SVC_DESTS[id * 2 + gen]. */
struct xvs_svc {
	__u32 id;
	__u32 flags; /* IP_VS_SVC_F_* */
	__u32 ring_len;
	__u32 gen;     /* 0 or 1 */
	__u32 sched;   /* enum xvs_sched */
	__u32 timeout; /* persistence timeout in seconds (-p) */
	__u32 fwmark;   /* -f: the mark; 0 for an address service */
	/* Persistence netmask (-M; IPv6: the prefix length's mask), one AND
	 * per word with the client address. */
	union xvs_addr netmask;
};

/* SVC_DESTS value: a service's dests in kernel list order (newest first). */
struct xvs_svc_dests {
	__u32 n;
	__u32 ids[XVS_SVC_DESTS_MAX];
};

/* RING_MAP key. */
struct xvs_ring_key {
	__u32 svc_id;
	__u32 slot; /* gen << 31 | idx */
};

#define XVS_RING_GEN_SHIFT 31

/* DEST_MAP value (array indexed by dest id). */
struct xvs_dest {
	union xvs_addr addr;
	__be16 port;
	__u8 fwd;   /* enum xvs_fwd */
	__u8 flags; /* enum xvs_dest_flags */
	__u32 svc_id;
	__u32 weight;
	__u32 u_threshold; /* -x, 0 = none */
	__u32 l_threshold; /* -y, 0 = none */
	/* TUN only: GUE destination port, enum xvs_tun_type, enum
	 * xvs_tun_flags. */
	__be16 tun_port;
	__u8 tun_type;
	__u8 tun_flags;
	__u8 af; /* the dest's own family (TUN may mix families) */
	__u8 pad[3];
};

/* xvs_dest_nh.state */
enum xvs_nh_state {
	XVS_NH_NONE = 0,     /* not resolved yet */
	XVS_NH_OK = 1,       /* ifindex, MACs, MTU and source are valid */
	XVS_NH_NO_ROUTE = 2, /* no unicast route to the dest */
	XVS_NH_NO_NEIGH = 3, /* route, but the next hop's MAC is unknown */
	XVS_NH_LOCAL = 4,    /* one of the director's own addresses (RTN_LOCAL) */
};

/* DEST_NH value (array indexed by dest id): where a DR or TUN dest's
 * packets leave the director, resolved by user space from the kernel's
 * routes, links and neighbours (as IPVS's output route, so the director's
 * own forwarding may be off) and refreshed when they change. DR's next
 * hop is the real server itself (IPVS's KNOWN_NH), TUN's the route's.
 * A NAT dest's entry only says whether it is local (XVS_NH_LOCAL). */
struct xvs_dest_nh {
	__u32 ifindex; /* egress */
	__u32 mtu;     /* route MTU towards the dest */
	union xvs_addr src; /* the director's address towards it (TUN outer source) */
	__u8 dmac[6];
	__u8 smac[6];
	__u8 state;    /* enum xvs_nh_state */
	__u8 pad[3];
};

/* CONN_MAP key: a packet's own 5-tuple as it arrives. */
struct xvs_conn_key {
	union xvs_addr saddr;
	union xvs_addr daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 af; /* XVS_AF_INET / XVS_AF_INET6 */
	__u8 pad[2];
};

/* CONN_MAP value. Every NAT connection has two entries (DR/TUN
 * connections only the forward one, `peer` = RS:port -> client:cport as for
 * NAT but never inserted, because replies do not pass the director):
 *  - forward (flags 0): key client:cport -> VIP:vport, `peer` = reply key
 *    (RS:rport -> client:cport); holds the authoritative state/last_seen.
 *  - reply (XVS_CONN_F_REPLY): key RS:rport -> client:cport, `peer` =
 *    forward key, so peer.daddr/peer.dport are VIP:vport.
 * `state` is a full word so the program can compare-and-swap it. */
struct xvs_conn {
	__u64 last_seen_ns; /* CLOCK_MONOTONIC: coarse clock where the kernel has it */
	struct xvs_conn_key peer;
	__u32 svc_id;
	__u32 dest_id;
	__u32 state; /* enum xvs_state */
	__u8 fwd;    /* enum xvs_fwd */
	__u8 flags;  /* enum xvs_conn_flags */
	__u16 pad;
};

/* XVS_EXPIRY_CFG value (array, one slot): the limits the expiry scan
 * (`xvs_expiry_scan`, run by xvsd) compares idle times with, written by
 * xvsd before each run; the scan counts the entries it saw into
 * `visited`. */
struct xvs_expiry_cfg {
	__u64 timeout_ns[XVS_S_LAST]; /* forward entries, by state */
	__u64 ops_timeout_ns;         /* one-packet reply entries (udp timeout) */
	__u64 orphan_grace_ns;        /* reply entry without its forward entry
	                               * (~0: no orphan check this run) */
	__u64 now_ns;                 /* CLOCK_MONOTONIC, as last_seen_ns */
	__u64 visited;                /* out: entries scanned */
};

/* What the expiry scan reports of a CONN_MAP entry (xvs_expiry_rec.kind). */
enum xvs_expiry_kind {
	XVS_EXP_IDLE = 1,    /* forward entry idle past its state's timeout */
	XVS_EXP_OPS = 2,     /* one-packet reply entry idle past the udp timeout */
	XVS_EXP_ORPHAN = 3,  /* reply entry whose forward entry is gone or another's */
	XVS_EXP_PERSIST = 4, /* live forward entry under a persistence template */
};

/* One record of the expiry scan's output (read from the iterator's fd):
 * the entries that need user space, so a table of millions of live
 * connections is walked in the kernel and only these cross over. */
struct xvs_expiry_rec {
	struct xvs_conn_key key;
	__u32 svc_id;
	__u8 kind;  /* enum xvs_expiry_kind */
	__u8 flags; /* the entry's enum xvs_conn_flags */
	__u16 pad;
};

/* SVC_STATS / DEST_STATS value (per CPU). Bytes are IP total length. */
struct xvs_stats {
	__u64 conns;
	__u64 inpkts;
	__u64 outpkts;
	__u64 inbytes;
	__u64 outbytes;
};

/* DEST_CONNS value (mmapable array indexed by dest id, atomics): the
 * dest's runtime state, changed by the program (new connections and
 * templates) and by xvsd (expiry). Signed so a transient race shows as a
 * small negative, never as 4 billion. */
struct xvs_dest_conns {
	__s32 active;   /* ESTABLISHED */
	__s32 inactive; /* every other state */
	__s32 persist;  /* persistence templates (PersistConn) */
	__u32 flags;    /* enum xvs_dest_rt_flags */
};

/* PERSIST_MAP key: the kernel's template key
 * <proto, caddr & netmask, cport 0, vaddr, vport>; for a fwmark service
 * <0, caddr & netmask, 0, htonl(mark), 0>, one template across every
 * address, port and protocol of the mark. */
struct xvs_tmpl_key {
	union xvs_addr caddr;
	union xvs_addr vaddr;
	__be16 vport;
	__u8 proto;
	__u8 af; /* the service's family */
};

/* PERSIST_MAP value: a persistence template. */
struct xvs_tmpl {
	__u64 last_seen_ns; /* creation or last connection made through it */
	__u32 svc_id;
	__u32 dest_id;
	union xvs_addr daddr;
	__be16 dport; /* dest port, 0 for port-0 and FTP templates */
	__u16 flags;  /* enum xvs_tmpl_flags */
	__u32 timeout; /* seconds (the service's -p when created) */
	__u8 daf;      /* the dest's family */
	__u8 pad[3];
	__u32 pad2;
};

/* --pe sip: the Call-ID search (lib/sip.h) reads at most the first
 * XVS_SIP_SCAN_MAX bytes of a UDP payload; IPVS keeps Call-IDs of up to
 * XVS_SIP_CALLID_MAX bytes (IP_VS_PEDATA_MAXLEN). */
#define XVS_SIP_SCAN_MAX 2048
#define XVS_SIP_CALLID_MAX 255

/* SIP_TMPL key: a --pe sip template, IPVS's template key and the
 * Call-ID (ip_vs_sip_ct_match), which is known here by its length and
 * 64-bit FNV-1a hash (xvs_core::sched::persist::callid_hash). */
struct xvs_sip_key {
	struct xvs_tmpl_key tk;
	__u32 callid_len;
	__u64 callid_hash;
};

/* SIP_TMPL value: the template and its Call-ID (-Lc's pe_data, sync). */
struct xvs_sip_tmpl {
	struct xvs_tmpl t;
	__u8 callid[XVS_SIP_CALLID_MAX + 1];
};

/* LBLC_MAP key and value: one lblc/lblcr locality cache entry. */
struct xvs_lblc_key {
	__u32 svc_id;
	union xvs_addr daddr;
};

struct xvs_lblc {
	__u64 lastuse_ns;
	__u64 lastmod_ns; /* lblcr: last change of the set; lblc: creation */
	__u32 n;          /* members in dests (lblc: 1) */
	__u32 dests[XVS_LBLCR_SET_MAX]; /* most recently inserted first */
	__u32 pad;
};

/* XVS_CNT index: every verdict reason. src/counters.rs (COUNTERS) names each
 * by its enumerator; a const assertion fails the build when one is out of
 * place. */
enum xvs_counter {
	XVS_CNT_RX = 0,           /* packets seen */
	XVS_CNT_PASS_NOT_IP,      /* not IPv4 (ARP, IPv6, VLAN, ...) */
	XVS_CNT_PASS_TRUNCATED,   /* header cut short */
	XVS_CNT_PASS_BAD_IP,      /* version/IHL/total length invalid */
	XVS_CNT_PASS_FRAGMENT,    /* IPv4 fragment */
	XVS_CNT_PASS_PROTO,       /* not TCP/UDP/SCTP/ICMP */
	XVS_CNT_PASS_NO_SVC,      /* no conn and no service: not ours */
	XVS_CNT_PASS_TCP_NO_CONN, /* non-SYN TCP to a service without conn */
	XVS_CNT_PASS_NO_DEST,     /* empty ring or dest slot unavailable */
	XVS_CNT_PASS_FWD_UNSUPP,  /* dest fwd method not implemented */
	XVS_CNT_PASS_TTL,         /* TTL <= 1: kernel answers */
	XVS_CNT_PASS_STALE,       /* reply entry without forward entry */
	XVS_CNT_PASS_ICMP,        /* ICMP not for a NAT connection */
	XVS_CNT_DROP_CONN_FULL,   /* CONN_MAP full: new flow refused */
	XVS_CNT_REPLY_TAKEOVER,   /* new NAT conn took an older one's reply tuple */
	XVS_CNT_CONN_NEW,         /* connections created */
	XVS_CNT_NAT_IN,           /* client->RS packets rewritten */
	XVS_CNT_NAT_OUT,          /* RS->client packets rewritten */
	XVS_CNT_ICMP_IN,          /* client->VIP ICMP errors translated */
	XVS_CNT_ICMP_OUT,         /* RS->client ICMP errors translated */
	XVS_CNT_FIB_NO_NEIGH,     /* fib: no neighbour, rewritten packet passed */
	XVS_CNT_FIB_FRAG_NEEDED,  /* fib: MTU exceeded, rewritten packet passed */
	XVS_CNT_FIB_OTHER,        /* fib: other failure, rewritten packet passed */
	XVS_CNT_TX,               /* XDP_TX */
	XVS_CNT_REDIRECT,         /* bpf_redirect to another interface */
	XVS_CNT_DR_IN,            /* DR: packets sent on to the RS (MACs rewritten) */
	XVS_CNT_TUN_IN,           /* TUN: packets encapsulated (sent or passed) */
	XVS_CNT_DROP_NO_NEIGH,    /* DR/TUN: next hop's MAC not (yet) known, dropped */
	XVS_CNT_DROP_FIB,         /* DR/TUN: no route to the RS, dropped */
	XVS_CNT_ICMP_FRAG_NEEDED, /* DR/TUN: DF packet too big, ICMP answered */
	XVS_CNT_DROP_TOO_BIG,     /* DR/TUN: too big, cannot be answered or fragmented */
	XVS_CNT_DROP_ENCAP,       /* bpf_xdp_adjust_head/tail failed */
	XVS_CNT_CONN_REUSE,       /* SYN on a TIME_WAIT/CLOSE conn: scheduled afresh */
	XVS_CNT_PERSIST_HIT,      /* new conn sent to a persistence template's dest */
	XVS_CNT_PERSIST_NEW,      /* persistence templates created */
	XVS_CNT_DROP_TMPL_FULL,   /* PERSIST_MAP full: new flow refused */
	XVS_CNT_OPS,              /* one-packet datagrams scheduled */
	XVS_CNT_NH_FILL,          /* next-hop cache slot (re)filled by a fib lookup */
	XVS_CNT_PEER,             /* tc: handed to a veth's peer's ingress (redirect/tx) */
	XVS_CNT_DROP_DEST_GONE,   /* packet of a connection whose dest was deleted (trash) */
	XVS_CNT_PASS_LOCAL,       /* packet of a local dest handed to the director's stack */
	XVS_CNT_DROP_LOOPBACK,    /* NAT to a loopback dest from outside (IPVS refuses too) */
	XVS_CNT_LOCAL_OUT,        /* local NAT dest's answers rewritten on egress */
	XVS_CNT_PASS_SCTP_NO_INIT, /* SCTP to a service without conn, first chunk not INIT */
	XVS_CNT_STATE_RACE,       /* state event lost to other CPUs' transitions (retries ran out) */
	XVS_CNT_DROP_SIP,         /* --pe sip: no Call-ID, or not UDP (IPVS drops it too) */
	XVS_CNT_MAX,
};

/* ---- next-hop cache (XVS_NH, XVS_NH_CFG) ----
 *
 * A successful bpf_fib_lookup is remembered per CPU in a direct-mapped
 * slot chosen by (ingress ifindex, destination), so established packets
 * skip the fib (route + neighbour) lookup. A slot is used while it is
 * younger than XVS_NH_CFG.ttl_ns (so a changed route or neighbour MAC is
 * followed within the TTL), its generation equals XVS_NH_CFG.gen (user
 * space bumps it to drop every slot at once) and the packet is no longer
 * than the longest one the fib accepted for it (`ok_len`: a packet above
 * it takes the fib, which checks the MTU). Failures are never cached. */
#define XVS_NH_BITS 12
#define XVS_NH_SLOTS (1u << XVS_NH_BITS)

struct xvs_nh {
	__u64 stamp_ns; /* the program's clock (lib/clock.h) at the fill, 0 = empty */
	union xvs_addr daddr; /* tag: the fib lookup's destination */
	__u32 iif;      /* tag: ingress ifindex */
	__u32 oif;      /* egress ifindex */
	__u32 gen;      /* XVS_NH_CFG.gen when filled */
	__u16 ok_len;   /* longest IP tot_len the fib accepted */
	__u8 dmac[6];
	__u8 smac[6];
	__u16 oflags;   /* XVS_IFACE flags of oif when filled */
	__u32 pad;
};

/* XVS_IFACE value bits (key: ifindex), written by user space per
 * attached interface. */
enum xvs_iface_flags {
	/* A veth whose peer is in another network namespace: tc hands
	 * frames for it straight to the peer's ingress (bpf_redirect_peer),
	 * skipping this side's transmit and the peer's backlog/NAPI. */
	XVS_IF_F_PEER = 1,
};

/* XVS_NH_CFG value (array, one slot), written by user space. */
struct xvs_nh_cfg {
	__u64 ttl_ns; /* 0: no caching, every packet takes the fib */
	__u32 gen;
	__u32 pad;
};

/* XVS_CNT has room for more counters than exist, so adding one does not
 * change the map's size (pinned maps must keep their size). */
#define XVS_CNT_SLOTS 64

/* ---- real-server side: decap.bpf.c (program xvs_decap) ---- */

#define XVS_DECAP_MAX_VIPS 16
#define XVS_DECAP_MAX_PORTS 4

/* .rodata of decap.bpf.c, set by user space before load. */
struct xvs_decap_cfg {
	union xvs_addr vips[XVS_DECAP_MAX_VIPS]; /* IPv4: .v4 */
	__be16 gue_ports[XVS_DECAP_MAX_PORTS];
	__u32 nvips;
	__u32 nports;
};

/* DECAP_CNT index; src/decap.rs asserts its names against these values. */
enum xvs_decap_counter {
	XVS_DECAP_RX = 0,    /* packets seen */
	XVS_DECAP_IPIP,      /* IPIP to a VIP: outer header stripped */
	XVS_DECAP_GUE,       /* GUE to a VIP: outer IP+UDP+GUE stripped */
	XVS_DECAP_PASS,      /* not ours: passed untouched */
	XVS_DECAP_ERR,       /* bpf_xdp_adjust_head failed: passed untouched */
	XVS_DECAP_MAX,
};

/* GUE (draft-ietf-intarea-gue) version 0 header as ipvs_gue_encap builds
 * it: byte 0 = version(2) | C(1) | hlen(5), byte 1 = proto_ctype. */
struct xvs_guehdr {
	__u8 ver_c_hlen;
	__u8 proto_ctype;
	__be16 flags;
};

/* Optional kernel features the director's program uses where the running
 * kernel has them (`xvs_feat` in its .rodata, set by the loader from
 * probes; never from the kernel version). */
enum xvs_feat {
	XVS_FEAT_COARSE_CLOCK = 1,  /* bpf_ktime_get_coarse_ns (5.11) */
	/* 2: free (5.12's atomics choose a build, -DXVS_NO_ATOMICS) */
	XVS_FEAT_REDIRECT_PEER = 4, /* bpf_redirect_peer (5.10; tc) */
	XVS_FEAT_CSUM_STATE = 8,    /* kfunc bpf_cast_to_kern_ctx (6.3; tc) */
};

/* The layout and meaning of the pinned maps. A data plane of another
 * version must not reuse them: the loader compares this with the pinned
 * XVS_ABI map before it loads (4: XVS_ABI itself, ASSURED templates;
 * 5: every address 16 bytes, union xvs_addr, and an af byte in keys). */
enum xvs_abi_version {
	XVS_ABI_VERSION = 5,
};

/* The sizes and shifts above as enumerators, so that the skeleton exports
 * them and Rust takes its constants from here (src/limits.rs). */
enum xvs_limit {
	XVS_LIM_SVC_DESTS_MAX = XVS_SVC_DESTS_MAX,
	XVS_LIM_LBLCR_SET_MAX = XVS_LBLCR_SET_MAX,
	XVS_LIM_MH_TAB_MAX = XVS_MH_TAB_MAX,
	XVS_LIM_RING_GEN_SHIFT = XVS_RING_GEN_SHIFT,
	XVS_LIM_CNT_SLOTS = XVS_CNT_SLOTS,
	XVS_LIM_FWM_NODES_MAX = XVS_FWM_NODES_MAX,
	XVS_LIM_FWM_PORTS_MAX = XVS_FWM_PORTS_MAX,
	XVS_LIM_SIP_SCAN_MAX = XVS_SIP_SCAN_MAX,
	XVS_LIM_SIP_CALLID_MAX = XVS_SIP_CALLID_MAX,
	XVS_LIM_SVC_F_PE_SIP = XVS_SVC_F_PE_SIP,
};

/* Object-wide constants. A read-only global of this type puts every enum
 * above into BTF, so the skeleton exports them to Rust. */
struct xvs_abi {
	__u32 version;
	__u32 cnt_max;
	enum xvs_counter counter;
	enum xvs_state state;
	enum xvs_fwd fwd;
	enum xvs_dest_flags dest_flags;
	enum xvs_conn_flags conn_flags;
	enum xvs_tmpl_flags tmpl_flags;
	enum xvs_dest_rt_flags dest_rt_flags;
	enum xvs_sched sched;
	enum xvs_tun_type tun_type;
	enum xvs_tun_flags tun_flags;
	enum xvs_decap_counter decap_counter;
	enum xvs_expiry_kind expiry_kind;
	enum xvs_feat feat;
	enum xvs_nh_state nh_state;
	struct xvs_expiry_rec expiry_rec;
	enum xvs_abi_version abi_version;
	enum xvs_limit limit;
};

#endif /* XVS_H */
