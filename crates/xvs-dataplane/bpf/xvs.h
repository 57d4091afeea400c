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

/* xvs_conn.flags */
enum xvs_conn_flags {
	XVS_CONN_F_REPLY = 1, /* reply entry (keyed by the real server tuple) */
};

/* IPVS TCP states (IP_VS_TCP_S_*), plus the UDP pseudo state.
 * Same numbering as xvs_core::model::ConnState. */
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
	XVS_S_LAST = 12,
};

/* SVC_MAP key: protocol, virtual address and port. */
struct xvs_svc_key {
	__be32 addr;
	__be16 port;
	__u8 proto; /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 pad;
};

/* SVC_MAP value. The scheduling ring of generation `gen` holds `ring_len`
 * dest ids in RING_MAP under (id, gen << 31 | idx). */
struct xvs_svc {
	__u32 id;
	__u32 flags; /* IP_VS_SVC_F_* */
	__u32 ring_len;
	__u32 gen; /* 0 or 1 */
};

/* RING_MAP key. */
struct xvs_ring_key {
	__u32 svc_id;
	__u32 slot; /* gen << 31 | idx */
};

#define XVS_RING_GEN_SHIFT 31

/* DEST_MAP value (array indexed by dest id). */
struct xvs_dest {
	__be32 addr;
	__be16 port;
	__u8 fwd;   /* enum xvs_fwd */
	__u8 flags; /* enum xvs_dest_flags */
	__u32 svc_id;
	__u32 weight;
	/* TUN only: GUE destination port, enum xvs_tun_type, enum
	 * xvs_tun_flags, and the outer source address (the director's address
	 * towards the real server, computed by user space). */
	__be16 tun_port;
	__u8 tun_type;
	__u8 tun_flags;
	__be32 tun_src;
};

/* CONN_MAP key: a packet's own 5-tuple as it arrives. */
struct xvs_conn_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
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
	__u64 last_seen_ns; /* bpf_ktime_get_ns(), CLOCK_MONOTONIC */
	struct xvs_conn_key peer;
	__u32 svc_id;
	__u32 dest_id;
	__u32 state; /* enum xvs_state */
	__u8 fwd;    /* enum xvs_fwd */
	__u8 flags;  /* enum xvs_conn_flags */
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

/* DEST_CONNS value (mmapable array indexed by dest id, atomics). Signed so
 * a transient race shows as a small negative, never as 4 billion. */
struct xvs_dest_conns {
	__s32 active;   /* ESTABLISHED */
	__s32 inactive; /* every other state */
};

/* XVS_CNT index: every verdict reason. Keep the Rust name table in
 * src/lib.rs (COUNTER_NAMES) in this order; a const assertion checks the
 * length against XVS_CNT_MAX. */
enum xvs_counter {
	XVS_CNT_RX = 0,           /* packets seen */
	XVS_CNT_PASS_NOT_IP,      /* not IPv4 (ARP, IPv6, VLAN, ...) */
	XVS_CNT_PASS_TRUNCATED,   /* header cut short */
	XVS_CNT_PASS_BAD_IP,      /* version/IHL/total length invalid */
	XVS_CNT_PASS_FRAGMENT,    /* IPv4 fragment */
	XVS_CNT_PASS_PROTO,       /* not TCP/UDP/ICMP */
	XVS_CNT_PASS_NO_SVC,      /* no conn and no service: not ours */
	XVS_CNT_PASS_TCP_NO_CONN, /* non-SYN TCP to a service without conn */
	XVS_CNT_PASS_NO_DEST,     /* empty ring or dest slot unavailable */
	XVS_CNT_PASS_FWD_UNSUPP,  /* dest fwd method not implemented */
	XVS_CNT_PASS_TTL,         /* TTL <= 1: kernel answers */
	XVS_CNT_PASS_STALE,       /* reply entry without forward entry */
	XVS_CNT_PASS_ICMP,        /* ICMP not for a NAT connection */
	XVS_CNT_DROP_CONN_FULL,   /* CONN_MAP full: new flow refused */
	XVS_CNT_DROP_CONN_CLASH,  /* reply tuple already used by another conn */
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
	XVS_CNT_DROP_NO_NEIGH,    /* DR: RS neighbour unresolved, dropped */
	XVS_CNT_DROP_FIB,         /* DR: other fib failure (no route, ...), dropped */
	XVS_CNT_ICMP_FRAG_NEEDED, /* DR/TUN: DF packet too big, ICMP answered */
	XVS_CNT_DROP_TOO_BIG,     /* DR/TUN: too big, cannot be answered or fragmented */
	XVS_CNT_DROP_ENCAP,       /* bpf_xdp_adjust_head/tail failed */
	XVS_CNT_MAX,
};

/* XVS_CNT has room for more counters than exist, so adding one does not
 * change the map's size (pinned maps must keep their size). */
#define XVS_CNT_SLOTS 64

/* ---- real-server side: decap.bpf.c (program xvs_decap) ---- */

#define XVS_DECAP_MAX_VIPS 16
#define XVS_DECAP_MAX_PORTS 4

/* .rodata of decap.bpf.c, set by user space before load. */
struct xvs_decap_cfg {
	__be32 vips[XVS_DECAP_MAX_VIPS];
	__be16 gue_ports[XVS_DECAP_MAX_PORTS];
	__u32 nvips;
	__u32 nports;
};

/* DECAP_CNT index. Keep decap::COUNTER_NAMES in src/lib.rs in order. */
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
	enum xvs_tun_type tun_type;
	enum xvs_tun_flags tun_flags;
	enum xvs_decap_counter decap_counter;
	__u32 pad;
};

#define XVS_ABI_VERSION 2

#endif /* XVS_H */
