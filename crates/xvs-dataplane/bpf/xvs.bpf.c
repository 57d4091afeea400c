// SPDX-License-Identifier: GPL-2.0-only
/*
 * xvs XDP data plane: IPVS-style NAT (masquerading), direct routing and
 * IPIP/GUE tunnelling for TCP and UDP. See docs/design.md. Shared
 * structures live in xvs.h only.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xvs.h"

/* One source, two attachments (docs/design.md, "Attach modes"): built
 * as-is it is `xvs_xdp` for XDP; built with -DXVS_TC it is `xvs_tc` for
 * tc's clsact ingress hook, where packets stay skbs (no conversion on
 * veth, GRO/GSO packets forwarded whole). Differences are confined to the
 * verdicts, header room and checksum helpers below. */
#ifdef XVS_TC
#include <linux/pkt_cls.h>
#include <bpf/bpf_core_read.h>
typedef struct __sk_buff xvs_ctx;

/* The kernel's skb behind the context (kfunc, 6.3+), for the one field
 * the context does not show: the checksum state. CO-RE finds the
 * bitfield in this kernel's sk_buff. Weak: where the kernel lacks it,
 * libbpf leaves it unresolved and the program takes the helpers. */
extern void *bpf_cast_to_kern_ctx(void *) __ksym __weak;
struct sk_buff___xvs {
	__u8 ip_summed : 2;
} __attribute__((preserve_access_index));
#define CHECKSUM_UNNECESSARY 1
#define ACT_PASS TC_ACT_OK
#define ACT_DROP TC_ACT_SHOT
/* A GRO/GSO packet: its segments, not its length, must fit the MTU. */
#define CTX_GSO(ctx) ((ctx)->gso_size != 0)
/* What must be linear for direct access: Ethernet, IPv4 with options,
 * 8 bytes of L4 and, for ICMP errors, the quoted IPv4 header + 8. */
#define XVS_PULL_LEN 160
#else
typedef struct xdp_md xvs_ctx;
#define ACT_PASS XDP_PASS
#define ACT_DROP XDP_DROP
#define CTX_GSO(ctx) 0
#endif

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef BPF_F_MMAPABLE
#define BPF_F_MMAPABLE (1U << 10)
#endif

/* <linux/icmp.h> drags in libc headers; the ICMP header is all we need. */
struct icmphdr {
	__u8 type;
	__u8 code;
	__u16 checksum; /* ones' complement, byte order neutral */
	__be32 rest;
};

#define ICMP_DEST_UNREACH 3
#define ICMP_SOURCE_QUENCH 4
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#define ICMP_FRAG_NEEDED 4

#define IP_DF 0x4000
#define IP_MIN_MTU 68           /* RFC 791; IPVS refuses tunnel MTUs below it */
#define IPTOS_PREC_INTERNETCONTROL 0xc0
#define INET_ECN_MASK 3
#define INET_ECN_ECT_0 2
#define XVS_IPIP_HLEN 20        /* outer IPv4 header */
#define XVS_GUE_HLEN 32         /* outer IPv4 + UDP + 4-byte GUE header */
/* GUE source port range: the kernel's default ip_local_port_range, mapped
 * as udp_flow_src_port() maps a flow hash into it. */
#define XVS_GUE_SPORT_MIN 32768
#define XVS_GUE_SPORT_SPAN (60999 - 32768)

#define E2BIG_ 7
#define EEXIST_ 17

#define IP_MF_OFFSET 0x3fff /* MF flag | fragment offset */
#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_ACK 0x10

char LICENSE[] SEC("license") = "GPL";

/* Default sizes; user space overrides every max_entries before load. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct xvs_svc_key);
	__type(value, struct xvs_svc);
} SVC_MAP SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct xvs_dest);
} DEST_MAP SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 18);
	__type(key, struct xvs_ring_key);
	__type(value, __u32);
} RING_MAP SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} SCHED_POS SEC(".maps");

#include "conn_map.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct xvs_stats);
} SVC_STATS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct xvs_stats);
} DEST_STATS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct xvs_dest_conns);
} DEST_CONNS SEC(".maps");

/* Next hops of DR/TUN dests (xvs.h), written by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct xvs_dest_nh);
} DEST_NH SEC(".maps");

/* A service's dests in kernel list order, per generation: svc_id * 2 + gen. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct xvs_svc_dests);
} SVC_DESTS SEC(".maps");

/* Persistence templates (-p). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct xvs_tmpl_key);
	__type(value, struct xvs_tmpl);
} PERSIST_MAP SEC(".maps");

/* lblc/lblcr locality caches, keyed by (service, destination address). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct xvs_lblc_key);
	__type(value, struct xvs_lblc);
} LBLC_MAP SEC(".maps");

/* Test hook: when slot 0 is non-zero it is the state of an xorshift64
 * generator that replaces bpf_get_prandom_u32 (twos), so a test can feed
 * the program and the reference model the same random numbers. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} XVS_RAND SEC(".maps");

/* Next-hop cache (see xvs.h): per CPU, so a slot has one writer. Not
 * pinned: it is only a cache. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_NH_SLOTS);
	__type(key, __u32);
	__type(value, struct xvs_nh);
} XVS_NH SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_nh_cfg);
} XVS_NH_CFG SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);   /* ifindex */
	__type(value, enum xvs_iface_flags);
} XVS_IFACE SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_CNT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} XVS_CNT SEC(".maps");

_Static_assert(XVS_CNT_MAX <= XVS_CNT_SLOTS, "XVS_CNT_SLOTS too small");

/* Pinned with the other maps; holds the XVS_ABI_VERSION of the data plane
 * that made them (written by the loader; the program never reads it). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} XVS_ABI SEC(".maps");

const volatile struct xvs_abi xvs_abi = {
	.version = XVS_ABI_VERSION,
	.cnt_max = XVS_CNT_MAX,
};

/* Optional kernel features (enum xvs_feat), probed by the loader on the
 * running kernel and set before load: the code of a missing one is dead
 * and the verifier never sees it. */
const volatile __u32 xvs_feat = 0;
#define HAVE(f) (xvs_feat & (f))

/* Atomics. Every kernel has the plain atomic add; the fetching forms,
 * compare-and-swap, and/or came in 5.12, and an older verifier refuses
 * the whole program when they appear anywhere in it (dead code
 * included). So the program is also built with -DXVS_NO_ATOMICS, which
 * the loader takes where the kernel lacks them (feature `atomics`): the
 * value is then read after a plain atomic add, and cmpxchg/and/or become
 * plain read-modify-writes. Two CPUs handling one connection at the same
 * instant may then count a state change twice (counts only; forwarding
 * is unaffected). OVERLOAD is the flag word's only bit, so a plain store
 * of it orders like the atomic and/or would. */
static __always_inline __s32 xvs_add_return32(__s32 *p, __s32 d)
{
#ifndef XVS_NO_ATOMICS
	return __sync_add_and_fetch(p, d);
#else
	__sync_fetch_and_add(p, d);
	return *(volatile __s32 *)p;
#endif
}

static __always_inline __u64 xvs_fetch_add64(__u64 *p, __u64 d)
{
#ifndef XVS_NO_ATOMICS
	return __sync_fetch_and_add(p, d);
#else
	__u64 old = *(volatile __u64 *)p;

	__sync_fetch_and_add(p, d);
	return old;
#endif
}

static __always_inline void xvs_or32(__u32 *p, __u32 m)
{
#ifndef XVS_NO_ATOMICS
	__sync_fetch_and_or(p, m);
#else
	*(volatile __u32 *)p |= m;
#endif
}

static __always_inline void xvs_and32(__u32 *p, __u32 m)
{
#ifndef XVS_NO_ATOMICS
	__sync_fetch_and_and(p, m);
#else
	*(volatile __u32 *)p &= m;
#endif
}

/* 1 when *p was `old` and is now `new`. */
static __always_inline int xvs_cmpxchg32(__u32 *p, __u32 old, __u32 new)
{
#ifndef XVS_NO_ATOMICS
	return __sync_val_compare_and_swap(p, old, new) == old;
#else
	if (*(volatile __u32 *)p != old)
		return 0;
	*(volatile __u32 *)p = new;
	return 1;
#endif
}

/* IPVS tcp_states (ip_vs_proto_tcp.c), one row per (direction, event),
 * one column per current state; the UDP column is never used for TCP. */
#define sNO XVS_S_NONE
#define sES XVS_S_ESTABLISHED
#define sSS XVS_S_SYN_SENT
#define sSR XVS_S_SYN_RECV
#define sFW XVS_S_FIN_WAIT
#define sTW XVS_S_TIME_WAIT
#define sCL XVS_S_CLOSE
#define sCW XVS_S_CLOSE_WAIT
#define sLA XVS_S_LAST_ACK
#define sLI XVS_S_LISTEN
#define sSA XVS_S_SYNACK

#define TCP_DIR_INPUT 0
#define TCP_DIR_OUTPUT 4
#define TCP_DIR_INPUT_ONLY 8

static const __u8 tcp_states[12][XVS_S_LAST] = {
	/* INPUT:   sNO  sES  sSS  sSR  sFW  sTW  sCL  sCW  sLA  sLI  sSA  UDP */
	/* syn */ { sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sCL },
	/* fin */ { sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sTW, sCL },
	/* ack */ { sCL, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES, sCL },
	/* rst */ { sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sSR, sCL },
	/* OUTPUT */
	/* syn */ { sSS, sES, sSS, sSR, sSS, sSS, sSS, sSS, sSS, sLI, sSR, sCL },
	/* fin */ { sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW, sCL },
	/* ack */ { sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES, sCL },
	/* rst */ { sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL, sCL },
	/* INPUT-ONLY (DR/TUN: the director sees the client's packets only) */
	/* syn */ { sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sCL },
	/* fin */ { sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW, sCL },
	/* ack */ { sCL, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES, sCL },
	/* rst */ { sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL, sCL },
};

static __always_inline void cnt(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&XVS_CNT, &idx);

	if (v)
		*v += 1;
}

static __always_inline int verdict(__u32 idx, int action)
{
	cnt(idx);
	return action;
}

/* XVS_IFACE flags of `ifindex` (0 when none, and always in XDP). */
static __always_inline __u32 iface_flags(__u32 ifindex)
{
#ifdef XVS_TC
	__u32 *f = bpf_map_lookup_elem(&XVS_IFACE, &ifindex);

	return f ? *f : 0;
#else
	return 0;
#endif
}

/* Sends the frame to `ifindex`, whose XVS_IFACE flags are `oflags`. tc
 * notes the egress device in cb[0] so that BPF_PROG_TEST_RUN (which does
 * not perform redirects) can tell "back out where it came in" from "to
 * another interface". */
static __always_inline int act_redirect(xvs_ctx *ctx, __u32 ifindex, __u32 oflags)
{
#ifdef XVS_TC
	ctx->cb[0] = ifindex;
	if (HAVE(XVS_FEAT_REDIRECT_PEER) && (oflags & XVS_IF_F_PEER)) {
		cnt(XVS_CNT_PEER);
		return bpf_redirect_peer(ifindex, 0);
	}
#endif
	return bpf_redirect(ifindex, 0);
}

/* Sends the frame back out of the interface it came in on. */
static __always_inline int act_tx(xvs_ctx *ctx, __u32 oflags)
{
#ifdef XVS_TC
	return act_redirect(ctx, ctx->ifindex, oflags);
#else
	return XDP_TX;
#endif
}

/* ---- checksums (RFC 1624: HC' = ~(~HC + ~m + m')) ---- */

static __always_inline __u16 csum_fold(__u64 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

static __always_inline void csum_replace4(__u16 *sum, __u32 from, __u32 to)
{
	__u64 s = (__u16)~*sum;

	s += (~from & 0xffff) + ((~from) >> 16);
	s += (to & 0xffff) + (to >> 16);
	*sum = (__u16)~csum_fold(s);
}

static __always_inline void csum_replace2(__u16 *sum, __u16 from, __u16 to)
{
	__u64 s = (__u16)~*sum;

	s += (__u16)~from;
	s += to;
	*sum = (__u16)~csum_fold(s);
}

/* ---- stats and DEST_CONNS ---- */

static __always_inline void stats_conn(__u32 svc_id, __u32 dest_id)
{
	struct xvs_stats *s;

	s = bpf_map_lookup_elem(&SVC_STATS, &svc_id);
	if (s)
		s->conns++;
	s = bpf_map_lookup_elem(&DEST_STATS, &dest_id);
	if (s)
		s->conns++;
}

static __always_inline void stats_add(__u32 svc_id, __u32 dest_id, int in, __u64 bytes)
{
	struct xvs_stats *s;

	s = bpf_map_lookup_elem(&SVC_STATS, &svc_id);
	if (s) {
		if (in) {
			s->inpkts++;
			s->inbytes += bytes;
		} else {
			s->outpkts++;
			s->outbytes += bytes;
		}
	}
	s = bpf_map_lookup_elem(&DEST_STATS, &dest_id);
	if (s) {
		if (in) {
			s->inpkts++;
			s->inbytes += bytes;
		} else {
			s->outpkts++;
			s->outbytes += bytes;
		}
	}
}

static __always_inline void dest_conns_add(__u32 dest_id, __u32 state, int delta)
{
	struct xvs_dest_conns *dc = bpf_map_lookup_elem(&DEST_CONNS, &dest_id);

	if (!dc)
		return;
	if (state == XVS_S_ESTABLISHED)
		__sync_fetch_and_add(&dc->active, delta);
	else
		__sync_fetch_and_add(&dc->inactive, delta);
}

/* ip_vs_bind_dest: one more connection in `state`; with an upper
 * threshold (-x), OVERLOAD is set once active + inactive reaches it. */
static __always_inline void dest_bind(__u32 dest_id, __u32 state)
{
	struct xvs_dest_conns *dc = bpf_map_lookup_elem(&DEST_CONNS, &dest_id);
	struct xvs_dest *d;
	__s64 total;

	if (!dc)
		return;
	if (state == XVS_S_ESTABLISHED)
		total = (__s64)xvs_add_return32(&dc->active, 1) + dc->inactive;
	else
		total = (__s64)xvs_add_return32(&dc->inactive, 1) + dc->active;
	d = bpf_map_lookup_elem(&DEST_MAP, &dest_id);
	if (d && d->u_threshold && total >= (__s64)d->u_threshold)
		xvs_or32(&dc->flags, XVS_DEST_F_OVERLOAD);
}

/* ip_vs_unbind_dest: one connection fewer; OVERLOAD is cleared below the
 * lower threshold (-y), else below 3/4 of the upper one, else at once. */
static __always_inline void dest_unbind(__u32 dest_id, __u32 state)
{
	struct xvs_dest_conns *dc = bpf_map_lookup_elem(&DEST_CONNS, &dest_id);
	struct xvs_dest *d;
	__s64 total;
	int clear;

	if (!dc)
		return;
	if (state == XVS_S_ESTABLISHED)
		total = (__s64)xvs_add_return32(&dc->active, -1) + dc->inactive;
	else
		total = (__s64)xvs_add_return32(&dc->inactive, -1) + dc->active;
	if (!(dc->flags & XVS_DEST_F_OVERLOAD))
		return;
	d = bpf_map_lookup_elem(&DEST_MAP, &dest_id);
	if (!d)
		return;
	if (d->l_threshold)
		clear = total < (__s64)d->l_threshold;
	else if (d->u_threshold)
		clear = total * 4 < (__s64)d->u_threshold * 3;
	else
		clear = 1;
	if (clear)
		xvs_and32(&dc->flags, ~(__u32)XVS_DEST_F_OVERLOAD);
}

static __always_inline __u32 tcp_next_state(__u32 dir_off, __u8 flags, __u32 old)
{
	__u32 row;

	if (flags & TCPF_RST)
		row = 3;
	else if (flags & TCPF_SYN)
		row = 0;
	else if (flags & TCPF_FIN)
		row = 1;
	else if (flags & TCPF_ACK)
		row = 2;
	else
		return XVS_S_CLOSE;
	row += dir_off;
	if (row >= 12 || old >= XVS_S_LAST)
		return XVS_S_CLOSE;
	return tcp_states[row][old];
}

/* Apply one TCP event to the forward entry; DEST_CONNS follows the
 * transition that actually got committed (compare-and-swap). */
static __always_inline void tcp_transition(struct xvs_conn *fc, __u32 dir_off, __u8 flags)
{
	__u32 old = *(volatile __u32 *)&fc->state;
	__u32 new = tcp_next_state(dir_off, flags, old);

	if (new == old)
		return;
	if (!xvs_cmpxchg32(&fc->state, old, new))
		return;
	if ((old == XVS_S_ESTABLISHED) != (new == XVS_S_ESTABLISHED)) {
		dest_conns_add(fc->dest_id, old, -1);
		dest_conns_add(fc->dest_id, new, 1);
	}
}

/* ---- transmit ---- */

static __always_inline void ip_decrease_ttl(struct iphdr *ip)
{
	__u32 check = ip->check;

	check += bpf_htons(0x0100);
	ip->check = (__u16)(check + (check >= 0xFFFF));
	ip->ttl--;
}

/* Full checksum of a 20-byte IPv4 header (check field zeroed first). */
static __always_inline __u16 ip_csum20(struct iphdr *ip)
{
	__u16 *w = (__u16 *)ip;
	__u64 s = 0;

	ip->check = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		s += w[i];
	return (__u16)~csum_fold(s);
}

/* ---- next hop: bpf_fib_lookup behind a per-CPU cache ---- */

/* The clock of last_seen_ns and of the next-hop cache: CLOCK_MONOTONIC.
 * Where the kernel has it (5.11), its value at the last tick, which is
 * far cheaper than reading the clocksource per packet (and never ahead
 * of user space's reading). */
static __always_inline __u64 xvs_now(void)
{
	if (HAVE(XVS_FEAT_COARSE_CLOCK))
		return bpf_ktime_get_coarse_ns();
	return bpf_ktime_get_ns();
}

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
	__u8 d = 0;

#pragma unroll
	for (int i = 0; i < ETH_ALEN; i++)
		d |= a[i] ^ b[i];
	return !d;
}

static __always_inline struct xvs_nh *nh_slot(__u32 iif, __be32 daddr)
{
	__u32 k = ((daddr ^ (iif * 0x85ebca6bu)) * 0x9e3779b1u) >> (32 - XVS_NH_BITS);

	return bpf_map_lookup_elem(&XVS_NH, &k);
}

/* The egress interface's XVS_IFACE flags travel with a successful lookup
 * in a field the kernel fills with the egress VLAN, which xvs never uses
 * (no VLAN devices in its path): no extra stack in call chains that are
 * at the verifier's 512-byte limit. */
#define FIB_OFLAGS(fib) ((fib)->h_vlan_TCI)

/* bpf_fib_lookup(ctx, fib, 0) for a filled-in `fib` (ifindex = ingress,
 * ipv4_dst, tot_len, ...), answered from the next-hop cache when its slot
 * is valid (see xvs.h): then only ifindex, dmac and smac are set, which is
 * all the callers read on success. Successful lookups fill the slot. */
static __always_inline long fib_lookup_cached(xvs_ctx *ctx, struct bpf_fib_lookup *fib)
{
	__u32 zero = 0, iif = fib->ifindex, len = fib->tot_len;
	__be32 dst = fib->ipv4_dst;
	struct xvs_nh_cfg *cfg = bpf_map_lookup_elem(&XVS_NH_CFG, &zero);
	struct xvs_nh *e = NULL;
	__u64 now = 0;
	long rc;

	if (cfg && cfg->ttl_ns) {
		e = nh_slot(iif, dst);
		now = xvs_now();
	}
	if (e && e->daddr == dst && e->iif == iif && e->gen == cfg->gen && len <= e->ok_len &&
	    now - e->stamp_ns < cfg->ttl_ns) {
		fib->ifindex = e->oif;
		__builtin_memcpy(fib->dmac, e->dmac, ETH_ALEN);
		__builtin_memcpy(fib->smac, e->smac, ETH_ALEN);
		FIB_OFLAGS(fib) = e->oflags;
		return BPF_FIB_LKUP_RET_SUCCESS;
	}
	rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return rc;
	FIB_OFLAGS(fib) = iface_flags(fib->ifindex);
	if (!e || !cfg)
		return rc;
	if (e->daddr == dst && e->iif == iif && e->gen == cfg->gen && e->oif == fib->ifindex &&
	    now - e->stamp_ns < cfg->ttl_ns && mac_eq(e->dmac, fib->dmac) &&
	    mac_eq(e->smac, fib->smac)) {
		/* same next hop, only a longer packet: widen ok_len */
		if (len > e->ok_len)
			e->ok_len = len;
		return rc;
	}
	e->stamp_ns = now;
	e->daddr = dst;
	e->iif = iif;
	e->oif = fib->ifindex;
	e->gen = cfg->gen;
	e->ok_len = len;
	e->oflags = FIB_OFLAGS(fib);
	__builtin_memcpy(e->dmac, fib->dmac, ETH_ALEN);
	__builtin_memcpy(e->smac, fib->smac, ETH_ALEN);
	cnt(XVS_CNT_NH_FILL);
	return rc;
}

/* Sets the MACs the fib lookup found and sends the frame out. */
static __always_inline int fib_out(xvs_ctx *ctx, struct bpf_fib_lookup *fib)
{
	__u32 oflags = FIB_OFLAGS(fib);

	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
	__builtin_memcpy(eth->h_dest, fib->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib->smac, ETH_ALEN);
	if (fib->ifindex == ctx->ingress_ifindex) {
		cnt(XVS_CNT_TX);
		return act_tx(ctx, oflags);
	}
	cnt(XVS_CNT_REDIRECT);
	return act_redirect(ctx, fib->ifindex, oflags);
}

/* Next hop for a rewritten packet. On any fib failure the rewritten packet
 * goes to the kernel, which forwards it (and decrements TTL) itself. */
static __noinline int xmit(xvs_ctx *ctx, __be16 sport, __be16 dport)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct bpf_fib_lookup fib = {};
	long rc;

	if ((void *)(ip + 1) > data_end)
		return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
	fib.family = AF_INET;
	fib.tos = ip->tos;
	fib.l4_protocol = ip->protocol;
	fib.sport = sport;
	fib.dport = dport;
	/* 0 = let the kernel judge a GSO packet by its segments */
	fib.tot_len = CTX_GSO(ctx) ? 0 : bpf_ntohs(ip->tot_len);
	fib.ifindex = ctx->ingress_ifindex;
	fib.ipv4_src = ip->saddr;
	fib.ipv4_dst = ip->daddr;

	rc = fib_lookup_cached(ctx, &fib);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		ip_decrease_ttl(ip);
		return fib_out(ctx, &fib);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return verdict(XVS_CNT_FIB_NO_NEIGH, ACT_PASS);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return verdict(XVS_CNT_FIB_FRAG_NEEDED, ACT_PASS);
	return verdict(XVS_CNT_FIB_OTHER, ACT_PASS);
}

/* ---- NAT rewrite of the L4 packet itself ---- */

/* Rewrite destination (dst=1) or source (dst=0) address and port. `csum`
 * points at the L4 checksum (NULL: left to the caller); udp says a zero
 * checksum means "none". */
static __always_inline void nat_l4(struct iphdr *ip, __be16 *ports, __u16 *csum, int udp, int dst,
				   __be32 addr, __be16 port)
{
	__be32 old_addr = dst ? ip->daddr : ip->saddr;
	__be16 old_port = dst ? ports[1] : ports[0];

	if (csum && (!udp || *csum)) {
		csum_replace4(csum, old_addr, addr);
		csum_replace2(csum, old_port, port);
		if (udp && *csum == 0)
			*csum = 0xffff;
	}
	csum_replace4(&ip->check, old_addr, addr);
	if (dst) {
		ip->daddr = addr;
		ports[1] = port;
	} else {
		ip->saddr = addr;
		ports[0] = port;
	}
}

#ifdef XVS_TC
/* tc's nat_l4 (see nat_rewrite), a function of its own so that its
 * spills across helper calls stay out of the caller's frame (the call
 * chains are at the verifier's 512-byte stack limit). `how`: bit 0 UDP,
 * bit 1 destination. */
static __noinline int nat_l4_tc(xvs_ctx *ctx, __u32 l4off, __u32 how, __be32 addr, __be16 port)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	int udp = how & 1, dst = how & 2;
	__u32 coff = udp ? __builtin_offsetof(struct udphdr, check)
			 : __builtin_offsetof(struct tcphdr, check);
	__be16 *ports, old_port;
	__u16 *csum;
	__be32 old_addr;
	__u64 mm = udp ? BPF_F_MARK_MANGLED_0 : 0;

	l4off &= 0x7f; /* Ethernet + IPv4 with options */
	ports = data + l4off;
	csum = data + l4off + coff;
	if ((void *)(ip + 1) > data_end || (void *)(ports + 2) > data_end ||
	    (void *)(csum + 1) > data_end)
		return -1;
	old_addr = dst ? ip->daddr : ip->saddr;
	old_port = dst ? ports[1] : ports[0];
	/* CHECKSUM_NONE or _UNNECESSARY (verified on receipt, the usual case
	 * off a NIC or a veth whose sender finished the sum): the field is a
	 * full checksum, and the incremental update in place is right and
	 * cheaper than the helpers, which PARTIAL (the field holds only the
	 * pseudo-header sum) and COMPLETE (skb->csum must follow) need. */
	if (HAVE(XVS_FEAT_CSUM_STATE) && bpf_ksym_exists(bpf_cast_to_kern_ctx)) {
		struct sk_buff___xvs *kskb = bpf_cast_to_kern_ctx(ctx);

		if (BPF_CORE_READ_BITFIELD(kskb, ip_summed) <= CHECKSUM_UNNECESSARY) {
			nat_l4(ip, ports, csum, udp, dst, addr, port);
			return 0;
		}
	}
	nat_l4(ip, ports, NULL, udp, dst, addr, port);
	if (bpf_l4_csum_replace(ctx, l4off + coff, old_addr, addr,
				BPF_F_PSEUDO_HDR | mm | sizeof(addr)) ||
	    bpf_l4_csum_replace(ctx, l4off + coff, old_port, port, mm | sizeof(port)))
		return -1;
	return 0;
}
#endif

/* nat_l4 for either attachment. `l4off` is the L4 header's offset in the
 * frame. tc finishes the L4 checksum with the kernel's helpers unless the
 * skb's checksum was verified on receipt: they also get CHECKSUM_PARTIAL
 * packets right (their L4 field holds only the pseudo-header sum, so a
 * port must not be folded in) and keep a CHECKSUM_COMPLETE skb->csum
 * valid; they invalidate packet pointers. Returns 0, or -1 when a helper
 * failed. */
static __always_inline int nat_rewrite(xvs_ctx *ctx, struct iphdr *ip, __be16 *ports, __u16 *csum,
				       __u32 l4off, int udp, int dst, __be32 addr, __be16 port)
{
#ifdef XVS_TC
	return nat_l4_tc(ctx, l4off, (udp ? 1 : 0) | (dst ? 2 : 0), addr, port);
#else
	nat_l4(ip, ports, csum, udp, dst, addr, port);
	return 0;
#endif
}

/* ---- DR and TUN ---- */

/* Ones' complement sum of `len` bytes of the frame from offset `off`, plus
 * `seed`, folded to 16 bits (not inverted); -1 when the frame is shorter.
 * A global function, so the verifier checks its loops once. */
__noinline int xvs_csum_frame(xvs_ctx *ctx, __u32 off, __u32 len, __u32 seed)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 s = seed;
	void *p;
	__u32 i;

	if (!ctx)
		return -1;
	for (i = 0; i < 64; i++) { /* up to 16 KiB */
		if (len < 256)
			break;
		p = data + (off & 0x3fff);
		if (p + 256 > data_end)
			return -1;
		s += (__u32)bpf_csum_diff(NULL, 0, p, 256, 0);
		off += 256;
		len -= 256;
	}
	for (i = 0; i < 64; i++) {
		if (len < 4)
			break;
		p = data + (off & 0x3fff);
		if (p + 4 > data_end)
			return -1;
		s += *(__u32 *)p;
		off += 4;
		len -= 4;
	}
	p = data + (off & 0x3fff);
	if (len >= 2) {
		if (p + 2 > data_end)
			return -1;
		s += *(__u16 *)p;
		p += 2;
		len -= 2;
	}
	if (len) {
		if (p + 1 > data_end)
			return -1;
		/* Odd tail byte, padded with zero (little-endian BPF target). */
		s += *(__u8 *)p;
	}
	return csum_fold(s);
}

static __always_inline __u32 fmix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* GUE source port: a hash of the connection's forward tuple (so every
 * packet of a flow, and ICMP errors about it, take the same port), mapped
 * into the ephemeral range as udp_flow_src_port() does. The fixtures
 * recompute it; keep them in step. */
static __always_inline __be16 gue_sport(const struct xvs_conn_key *k)
{
	__u32 h = fmix32(k->saddr);

	h = fmix32(h ^ k->daddr);
	h = fmix32(h ^ ((__u32)k->sport | ((__u32)k->dport << 16)));
	h = fmix32(h ^ k->proto);
	h ^= h << 16;
	return bpf_htons((__u16)((((__u64)h * XVS_GUE_SPORT_SPAN) >> 32) + XVS_GUE_SPORT_MIN));
}

/* Answers the IPv4 packet in the frame with ICMP dest-unreachable /
 * fragmentation-needed (RFC 792, next-hop MTU per RFC 1191), built in
 * place: source = the packet's destination (the VIP), MACs swapped,
 * payload = its IP header (with options) + the first 8 bytes after it,
 * sent back out of the ingress interface. */
static __always_inline int icmp_frag_needed(xvs_ctx *ctx, __u32 mtu)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data, e;
	struct iphdr *ip, *nip;
	struct icmphdr *ic;
	__be32 saddr, daddr;
	__u32 ihl, len, old_len, nwords, i;
	__u64 s = 0;
	int delta;

	if ((void *)(eth + 1) > data_end)
		return verdict(XVS_CNT_DROP_TOO_BIG, ACT_DROP);
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return verdict(XVS_CNT_DROP_TOO_BIG, ACT_DROP);
	ihl = (ip->ihl * 4) & 0x3c;
	if (ihl < sizeof(*ip) || (void *)ip + ihl + 8 > data_end)
		return verdict(XVS_CNT_DROP_TOO_BIG, ACT_DROP);
	__builtin_memcpy(&e, eth, sizeof(e));
	saddr = ip->saddr;
	daddr = ip->daddr;
#ifdef XVS_TC
	old_len = ctx->len;
#else
	old_len = data_end - data;
#endif
	len = sizeof(*nip) + sizeof(*ic) + ihl + 8; /* new IP total length */
	delta = (int)(sizeof(*eth) + len) - (int)(old_len + 28);
	if (delta > 0)
		return verdict(XVS_CNT_DROP_TOO_BIG, ACT_DROP);

	/* 28 new bytes before the IP header: it then sits exactly where the
	 * ICMP payload starts (eth 14 + IP 20 + ICMP 8). XDP grows the head
	 * (the old Ethernet header, saved in `e`, is overwritten below). */
#ifdef XVS_TC
	if (bpf_skb_adjust_room(ctx, 28, BPF_ADJ_ROOM_MAC, 0))
		return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
#else
	if (bpf_xdp_adjust_head(ctx, -28))
		return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
#endif
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	nip = (void *)(eth + 1);
	ic = (void *)(nip + 1);
	if ((void *)(ic + 1) > data_end)
		return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
	__builtin_memcpy(eth->h_dest, e.h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, e.h_dest, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);

	nip->version = 4;
	nip->ihl = 5;
	nip->tos = IPTOS_PREC_INTERNETCONTROL;
	nip->tot_len = bpf_htons(len);
	nip->id = (__u16)bpf_get_prandom_u32();
	nip->frag_off = 0;
	nip->ttl = 64;
	nip->protocol = IPPROTO_ICMP;
	nip->saddr = daddr;
	nip->daddr = saddr;
	nip->check = ip_csum20(nip);

	ic->type = ICMP_DEST_UNREACH;
	ic->code = ICMP_FRAG_NEEDED;
	ic->checksum = 0;
	ic->rest = bpf_htonl(mtu & 0xffff);
	nwords = (len - sizeof(*nip)) / 4; /* ICMP header + quote, <= 19 */
	for (i = 0; i < 19; i++) {
		__u32 *w = (__u32 *)ic + i;

		if (i >= nwords)
			break;
		if ((void *)(w + 1) > data_end)
			return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
		s += *w;
	}
	ic->checksum = (__u16)~csum_fold(s);
#ifdef XVS_TC
	if (delta && bpf_skb_change_tail(ctx, sizeof(*eth) + len, 0))
		return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
#else
	if (delta && bpf_xdp_adjust_tail(ctx, delta))
		return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
#endif
	cnt(XVS_CNT_ICMP_FRAG_NEEDED);
	return act_tx(ctx, iface_flags(ctx->ingress_ifindex));
}

/* The next hop of DR/TUN dest `dest_id`, or NULL with the packet
 * dropped and counted (*v: the verdict): DR's packets are addressed to a
 * local VIP and TUN's carry a local source, so neither can be handed to
 * the kernel, whose forwarding may be off besides. xvsd resolves what is
 * missing (it watches drop_no_neigh). */
static __always_inline struct xvs_dest_nh *dest_nh(__u32 dest_id, int *v)
{
	struct xvs_dest_nh *nh = bpf_map_lookup_elem(&DEST_NH, &dest_id);

	if (nh && nh->state == XVS_NH_OK && nh->ifindex)
		return nh;
	if (nh && nh->state == XVS_NH_NO_ROUTE)
		*v = verdict(XVS_CNT_DROP_FIB, ACT_DROP);
	else
		*v = verdict(XVS_CNT_DROP_NO_NEIGH, ACT_DROP);
	return NULL;
}

/* Sets the next hop's MACs and sends the frame out of its interface. */
static __always_inline int nh_out(xvs_ctx *ctx, const struct xvs_dest_nh *nh)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 oif = nh->ifindex, oflags = iface_flags(oif);

	if ((void *)(eth + 1) > data_end)
		return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
	__builtin_memcpy(eth->h_dest, nh->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, nh->smac, ETH_ALEN);
	if (oif == ctx->ingress_ifindex) {
		cnt(XVS_CNT_TX);
		return act_tx(ctx, oflags);
	}
	cnt(XVS_CNT_REDIRECT);
	return act_redirect(ctx, oif, oflags);
}

/* DR (ip_vs_dr_xmit): the IP packet keeps its addresses; only the
 * Ethernet header changes, towards the real server's MAC. The TTL is
 * decremented because the director routes the packet (IPVS does the same
 * in __ip_vs_get_out_rt). The packet cannot go to the kernel (its
 * destination is a local VIP): every failure drops, counted. */
static __always_inline int dr_xmit(xvs_ctx *ctx, __u32 dest_id, int can_icmp)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct xvs_dest_nh *nh;
	struct iphdr *ip;
	int v = ACT_DROP;

	if ((void *)(eth + 1) > data_end)
		return verdict(XVS_CNT_PASS_TRUNCATED, ACT_PASS);
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return verdict(XVS_CNT_PASS_TRUNCATED, ACT_PASS);
	nh = dest_nh(dest_id, &v);
	if (!nh)
		return v;
	/* A GSO packet is judged by its segments, on the way out. */
	if (!CTX_GSO(ctx) && bpf_ntohs(ip->tot_len) > nh->mtu) {
		if (can_icmp && (ip->frag_off & bpf_htons(IP_DF)) && nh->mtu >= IP_MIN_MTU)
			return icmp_frag_needed(ctx, nh->mtu);
		return verdict(XVS_CNT_DROP_TOO_BIG, ACT_DROP);
	}
	ip_decrease_ttl(ip);
	cnt(XVS_CNT_DR_IN);
	return nh_out(ctx, nh);
}

/* TUN (ip_vs_tunnel_xmit): prepend an outer IPv4 header (IPIP) or IPv4 +
 * UDP + GUE (ipvs_gue_encap). Outer source = the next hop's `src` (the
 * director's address towards the RS), destination = the RS; TOS = inner
 * TOS with ECN encapsulated (INET_ECN_encapsulate), DF = inner DF, TTL =
 * inner TTL after the decrement, id 0 with DF (as ip_select_ident) else
 * random. The inner packet is not otherwise touched. */
static __always_inline int tun_xmit(xvs_ctx *ctx, const struct xvs_dest *dest, __u32 dest_id,
				    __be16 sport, int can_icmp)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
#ifndef XVS_TC
	struct ethhdr e; /* XDP grows the head: the header moves */
#endif
	struct xvs_dest_nh *nh;
	struct iphdr *ip, *oip;
	__be32 rs = dest->addr, src;
	__be16 dport = dest->tun_port;
	int gue = dest->tun_type == XVS_TUN_GUE;
	int csum_on = gue && (dest->tun_flags & XVS_TUN_F_CSUM);
	__u32 hlen = gue ? XVS_GUE_HLEN : XVS_IPIP_HLEN;
	__u32 inner_len, mtu;
	int too_big, v = ACT_DROP;
	__be16 df;
	__u8 tos, ttl;

	if ((void *)(eth + 1) > data_end)
		return verdict(XVS_CNT_PASS_TRUNCATED, ACT_PASS);
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return verdict(XVS_CNT_PASS_TRUNCATED, ACT_PASS);
	nh = dest_nh(dest_id, &v);
	if (!nh)
		return v;
	src = nh->src;
	mtu = nh->mtu;
	inner_len = bpf_ntohs(ip->tot_len);
	df = ip->frag_off & bpf_htons(IP_DF);
	/* GSO: the segments are judged on the way out; adjust_room below
	 * shrinks them by the encapsulation. */
	too_big = !CTX_GSO(ctx) && inner_len + hlen > mtu;
	if (too_big && df) {
		/* As ensure_mtu_is_adequate: the sender learns the route MTU
		 * less the encapsulation overhead. */
		if (can_icmp && mtu >= hlen + IP_MIN_MTU)
			return icmp_frag_needed(ctx, mtu - hlen);
		return verdict(XVS_CNT_DROP_TOO_BIG, ACT_DROP);
	}

	ip_decrease_ttl(ip);
	ttl = ip->ttl;
	tos = ip->tos;
	if ((tos & INET_ECN_MASK) == INET_ECN_MASK) /* CE is not copied out */
		tos = (tos & ~INET_ECN_MASK) | INET_ECN_ECT_0;
#ifdef XVS_TC
	/* The outer checksum covers the whole datagram: only a packet that
	 * is one datagram can have it, and it must be linear to be summed. */
	if (csum_on && (CTX_GSO(ctx) || bpf_skb_pull_data(ctx, ctx->len)))
		return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
	/* Room after the Ethernet header; the flags make GSO segment the
	 * inner packet and repeat the outer headers. */
	if (bpf_skb_adjust_room(ctx, hlen, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 |
					(gue ? BPF_F_ADJ_ROOM_ENCAP_L4_UDP : 0)))
		return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
#else
	__builtin_memcpy(&e, eth, sizeof(e));
	if (bpf_xdp_adjust_head(ctx, -(int)hlen))
		return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
#endif
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	oip = (void *)(eth + 1);
	if ((void *)oip + XVS_GUE_HLEN > data_end)
		return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
#ifndef XVS_TC
	__builtin_memcpy(eth, &e, sizeof(e));
#endif

	oip->version = 4;
	oip->ihl = 5;
	oip->tos = tos;
	oip->tot_len = bpf_htons(inner_len + hlen);
	oip->id = df ? 0 : (__u16)bpf_get_prandom_u32();
	oip->frag_off = df;
	oip->ttl = ttl;
	oip->protocol = gue ? IPPROTO_UDP : IPPROTO_IPIP;
	oip->saddr = src;
	oip->daddr = rs;
	oip->check = ip_csum20(oip);

	if (gue) {
		struct udphdr *uh = (void *)(oip + 1);
		struct xvs_guehdr *gh = (void *)(uh + 1);
		__u32 ulen = inner_len + sizeof(*uh) + sizeof(*gh);

		uh->source = sport;
		uh->dest = dport;
		uh->len = bpf_htons(ulen);
		uh->check = 0;
		gh->ver_c_hlen = 0; /* version 0, data message, no options */
		gh->proto_ctype = IPPROTO_IPIP;
		gh->flags = 0;
		if (csum_on) {
			/* --tun-csum: full UDP checksum, pseudo header first. */
			__u32 seed = (src & 0xffff) + (src >> 16) + (rs & 0xffff) + (rs >> 16) +
				     bpf_htons(IPPROTO_UDP) + bpf_htons(ulen);
			int sum = xvs_csum_frame(ctx, sizeof(*eth) + sizeof(*oip), ulen, seed);
			__u16 check;

			if (sum < 0)
				return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
			check = (__u16)~sum;
			data = (void *)(long)ctx->data;
			data_end = (void *)(long)ctx->data_end;
			uh = data + sizeof(*eth) + sizeof(*oip);
			if ((void *)(uh + 1) > data_end)
				return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
			uh->check = check ? check : 0xffff;
		}
	}

	cnt(XVS_CNT_TUN_IN);
	/* No DF: IPVS fragments the outer packet; XDP cannot, so the kernel
	 * gets it (its forwarding fragments, where it is on). */
	if (too_big)
		return verdict(XVS_CNT_FIB_FRAG_NEEDED, ACT_PASS);
	return nh_out(ctx, nh);
}

/* Sends a client packet of a DR/TUN connection on to its dest, by the
 * dest's current forwarding method. `fkey` is the connection's forward
 * tuple. ICMP errors never cause ICMP errors (can_icmp = 0). */
static __noinline int fwd_dest(xvs_ctx *ctx, __u32 dest_id,
				    const struct xvs_conn_key *fkey, int can_icmp)
{
	struct xvs_dest *d = bpf_map_lookup_elem(&DEST_MAP, &dest_id);

	if (!d || !(d->flags & XVS_DEST_F_AVAILABLE) || d->fwd == XVS_FWD_MASQ)
		return verdict(XVS_CNT_PASS_STALE, ACT_PASS);
	if (d->fwd == XVS_FWD_ROUTE)
		return dr_xmit(ctx, dest_id, can_icmp);
	if (d->fwd != XVS_FWD_TUNNEL || d->tun_type > XVS_TUN_GUE)
		return verdict(XVS_CNT_PASS_FWD_UNSUPP, ACT_PASS);
	return tun_xmit(ctx, d, dest_id, gue_sport(fkey), can_icmp);
}

/* ---- ICMP errors for NAT, DR and TUN connections ---- */

static __noinline int handle_icmp(xvs_ctx *ctx, struct ethhdr *eth, struct iphdr *ip,
				       void *l4, void *data_end)
{
	struct icmphdr *ic = l4;
	struct iphdr *in;
	__be16 *ports;
	struct xvs_conn_key key = {};
	struct xvs_conn *c;
	__u32 inihl;
	__be32 old_addr, new_addr;
	__be16 old_port, new_port;
	__u16 old_check;

	if ((void *)(ic + 1) > data_end)
		return verdict(XVS_CNT_PASS_TRUNCATED, ACT_PASS);
	if (ic->type != ICMP_DEST_UNREACH && ic->type != ICMP_TIME_EXCEEDED &&
	    ic->type != ICMP_SOURCE_QUENCH && ic->type != ICMP_PARAMETERPROB)
		return verdict(XVS_CNT_PASS_ICMP, ACT_PASS);

	in = (void *)(ic + 1);
	if ((void *)(in + 1) > data_end)
		return verdict(XVS_CNT_PASS_TRUNCATED, ACT_PASS);
	inihl = in->ihl * 4;
	if (in->version != 4 || inihl < sizeof(*in))
		return verdict(XVS_CNT_PASS_ICMP, ACT_PASS);
	if (in->protocol != IPPROTO_TCP && in->protocol != IPPROTO_UDP)
		return verdict(XVS_CNT_PASS_ICMP, ACT_PASS);
	if (in->frag_off & bpf_htons(0x1fff))
		return verdict(XVS_CNT_PASS_ICMP, ACT_PASS);
	ports = (void *)in + inihl;
	if ((void *)(ports + 2) > data_end)
		return verdict(XVS_CNT_PASS_TRUNCATED, ACT_PASS);

	/* The embedded packet travelled the other way: look its reverse up. */
	key.saddr = in->daddr;
	key.daddr = in->saddr;
	key.sport = ports[1];
	key.dport = ports[0];
	key.proto = in->protocol;
	c = bpf_map_lookup_elem(&CONN_MAP, &key);
	if (!c)
		return verdict(XVS_CNT_PASS_ICMP, ACT_PASS);
	if (ip->ttl <= 1)
		return verdict(XVS_CNT_PASS_TTL, ACT_PASS);
	if (c->fwd != XVS_FWD_MASQ) {
		/* DR/TUN: as ip_vs_icmp_xmit, the error goes to the real
		 * server unchanged (it answered with the VIP as source). */
		if (c->flags & XVS_CONN_F_REPLY)
			return verdict(XVS_CNT_PASS_STALE, ACT_PASS);
		cnt(XVS_CNT_ICMP_IN);
		stats_add(c->svc_id, c->dest_id, 1, bpf_ntohs(ip->tot_len));
		return fwd_dest(ctx, c->dest_id, &key, 0);
	}

	if (c->flags & XVS_CONN_F_REPLY) {
		/* From the RS side about client->RS: show it from VIP:vport. */
		new_addr = c->peer.daddr;
		new_port = c->peer.dport;
		csum_replace4(&ip->check, ip->saddr, new_addr);
		ip->saddr = new_addr;
		old_addr = in->daddr;
		old_port = ports[1];
		old_check = in->check;
		csum_replace4(&in->check, old_addr, new_addr);
		in->daddr = new_addr;
		ports[1] = new_port;
		cnt(XVS_CNT_ICMP_OUT);
		stats_add(c->svc_id, c->dest_id, 0, bpf_ntohs(ip->tot_len));
	} else {
		/* From the client about VIP->client: hand it to the RS. */
		new_addr = c->peer.saddr;
		new_port = c->peer.sport;
		csum_replace4(&ip->check, ip->daddr, new_addr);
		ip->daddr = new_addr;
		old_addr = in->saddr;
		old_port = ports[0];
		old_check = in->check;
		csum_replace4(&in->check, old_addr, new_addr);
		in->saddr = new_addr;
		ports[0] = new_port;
		cnt(XVS_CNT_ICMP_IN);
		stats_add(c->svc_id, c->dest_id, 1, bpf_ntohs(ip->tot_len));
	}
	csum_replace4(&ic->checksum, old_addr, new_addr);
	csum_replace2(&ic->checksum, old_check, in->check);
	csum_replace2(&ic->checksum, old_port, new_port);
	return xmit(ctx, 0, 0);
}

/* ---- scheduling ---- */

/* What a scheduler sees of one dest. */
struct dview {
	__u32 weight;
	__u32 active;
	__u32 inactive;
	__u32 overloaded;
};

/* Reads dest `id`; 0 when the slot holds no dest (or, with svc_id !=
 * XVS_NO_DEST, a dest of another service: a stale template or cache). */
static __always_inline int dest_get(__u32 id, __u32 svc_id, struct dview *v)
{
	struct xvs_dest *d = bpf_map_lookup_elem(&DEST_MAP, &id);
	struct xvs_dest_conns *dc;

	if (!d || !(d->flags & XVS_DEST_F_AVAILABLE))
		return 0;
	if (svc_id != XVS_NO_DEST && d->svc_id != svc_id)
		return 0;
	dc = bpf_map_lookup_elem(&DEST_CONNS, &id);
	if (!dc)
		return 0;
	v->weight = d->weight;
	v->active = dc->active > 0 ? dc->active : 0;
	v->inactive = dc->inactive > 0 ? dc->inactive : 0;
	v->overloaded = dc->flags & XVS_DEST_F_OVERLOAD;
	return 1;
}

static __always_inline __u64 overhead(const struct dview *v)
{
	return ((__u64)v->active << 8) + v->inactive;
}

/* weight > 0 and not OVERLOAD */
static __always_inline int schedulable(__u32 id, __u32 svc_id)
{
	struct dview v;

	return dest_get(id, svc_id, &v) && v.weight && !v.overloaded;
}

/* bpf_get_prandom_u32, unless the XVS_RAND test hook is set. */
static __always_inline __u32 xvs_rand(void)
{
	__u32 k = 0;
	__u64 *st = bpf_map_lookup_elem(&XVS_RAND, &k);

	if (st && *st) {
		__u64 x = *st;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		*st = x;
		return (__u32)(x >> 32);
	}
	return bpf_get_prandom_u32();
}

/* get_random_u32_below (xvs_core::sched::hash::random_below); the
 * rejection loop (probability < ceil / 2^32 per draw) is bounded. */
static __always_inline __u32 random_below(__u32 ceil)
{
	__u32 r = xvs_rand();
	__u64 m;

	if (!ceil)
		return r;
	m = (__u64)ceil * r;
	if ((__u32)m < ceil) {
		__u32 bound = (0u - ceil) % ceil;

		for (int i = 0; i < 8 && (__u32)m < bound; i++)
			m = (__u64)ceil * xvs_rand();
	}
	return m >> 32;
}

#define GOLDEN_RATIO_32 0x61C88647u

/* ip_vs_sh_hashkey; addr and port in host order */
static __always_inline __u32 sh_hashkey(__u32 addr, __u32 port, __u32 offset)
{
	__u32 h = ((port + addr) * GOLDEN_RATIO_32) >> (32 - 8);

	return (offset + h) & (XVS_HASH_TAB_SIZE - 1);
}

/* ip_vs_dh_hashkey */
static __always_inline __u32 dh_hashkey(__u32 addr)
{
	return (addr * GOLDEN_RATIO_32) >> (32 - 8);
}

#define ROL64(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = ROL64(v1, 13);                                                                \
		v1 ^= v0;                                                                          \
		v0 = ROL64(v0, 32);                                                                \
		v2 += v3;                                                                          \
		v3 = ROL64(v3, 16);                                                                \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = ROL64(v3, 21);                                                                \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = ROL64(v1, 17);                                                                \
		v1 ^= v2;                                                                          \
		v2 = ROL64(v2, 32);                                                                \
	} while (0)

/* hsiphash of one little-endian u32 with key (k, k), as 64-bit kernels
 * compute it (xvs_core::sched::hash::hsiphash_u32). */
static __always_inline __u32 hsiphash_u32(__u32 v, __u64 k)
{
	__u64 v0 = 0x736f6d6570736575ULL ^ k, v1 = 0x646f72616e646f6dULL ^ k;
	__u64 v2 = 0x6c7967656e657261ULL ^ k, v3 = 0x7465646279746573ULL ^ k;
	__u64 b = (4ULL << 56) | v;

	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return (__u32)(v0 ^ v1 ^ v2 ^ v3);
}

#define MH_HASH1_KEY 2654435761ULL

/* ip_vs_mh_hashkey with hash1 */
static __always_inline __u32 mh_hashkey(__u32 addr, __u32 port, __u32 offset)
{
	return hsiphash_u32(offset + port + addr, MH_HASH1_KEY);
}

/* The scheduling context of one new connection. */
struct sched_in {
	__u32 svc_id;
	__u32 gen;
	__u32 sched;
	__u32 flags;
	__u32 ring_len;
	__u32 saddr; /* host order */
	__u32 daddr; /* host order */
	__u32 sport; /* host order */
	__be32 daddr_be;
	__be32 netmask; /* persistence */
	__u32 timeout;  /* persistence */
	__be16 svc_port; /* the matched service's port (0: port-0 service) */
	__u16 pad;
	__u64 now;
};

static __always_inline __u32 ring_get(__u32 svc_id, __u32 gen, __u32 idx)
{
	struct xvs_ring_key rk = {
		.svc_id = svc_id,
		.slot = ((gen & 1) << XVS_RING_GEN_SHIFT) | idx,
	};
	__u32 *id = bpf_map_lookup_elem(&RING_MAP, &rk);

	return id ? *id : XVS_NO_DEST;
}

/* Scan modes beyond enum xvs_sched. */
#define SCAN_TWOS_TOTAL 100
#define SCAN_LOC_UNDER 101

/* The least-connection family's pass over the dest list. */
struct scan {
	__u32 key; /* SVC_DESTS index */
	__u32 mode;
	__u32 best;
	__u32 best_w;
	__u64 best_oh;
	__u64 total;
	__s64 r1, r2;
	__u32 c1, c2;
	__u32 c1_w, c2_w;
	__u64 c1_oh, c2_oh;
};

/* A walk over a ring from the schedule position (rr, wrr) or a fallback
 * probe over a bucket table (sh-fallback, mh-fallback): one slot a step,
 * at most `len` steps. */
struct walk {
	__u32 svc_id;
	__u32 gen;
	__u32 len;
	__u32 found;
	__u64 p;       /* ring: the schedule position it starts from */
	__u64 skipped; /* steps before the pick */
	__u32 probe;   /* WALK_RING, WALK_SH or WALK_MH */
	__u32 saddr;   /* probe: host order */
	__u32 port;    /* probe: host order, 0 without sh-port/mh-port */
	__u32 ihash;   /* probe: the first slot's offset */
};

#define WALK_RING 0
#define WALK_SH 1
#define WALK_MH 2

/* ip_vs_dest_set_min / ip_vs_dest_set_max over an lblcr set. */
struct setscan {
	struct xvs_lblc_key key;
	__u32 svc_id;
	__u32 max;  /* 0: set_min, 1: set_max */
	__u32 best; /* set_min: dest id; set_max: member index */
	__u32 bw;
	__u64 boh;
};

/* Per-CPU scratch space shared by the global functions below. They take
 * scalars only, because 5.10's verifier accepts no pointer arguments to
 * a global function but the context, and a map value is a valid map key
 * on every kernel (a pointer argument is not, before 6.2). One program
 * runs on a CPU at a time, and each member has one user at a time. */
struct xvs_scratch {
	struct sched_in in;
	struct scan scan;
	struct walk walk;
	struct setscan set;
	struct xvs_conn_key fkey; /* xvs_new_conn: the packet's tuple */
	struct xvs_conn out;      /* xvs_new_conn: the forward entry */
	struct xvs_conn fval;
	struct xvs_conn_key rk;
	struct xvs_tmpl_key tk;
	struct xvs_tmpl nt;
	struct xvs_lblc_key lk;
	struct xvs_lblc lblc; /* a new lblc/lblcr entry */
	__s32 verdict;        /* persist_create's, when it returns -1 */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_scratch);
} XVS_SCRATCH SEC(".maps");

static __always_inline struct xvs_scratch *scratch(void)
{
	__u32 z = 0;

	return bpf_map_lookup_elem(&XVS_SCRATCH, &z);
}

static __always_inline void scan_set(struct scan *s, __u32 id, __u32 w, __u64 oh)
{
	s->best = id;
	s->best_w = w;
	s->best_oh = oh;
}

/* Loops are bounded `for` loops whose body is one call of a global
 * function (a "step"), verified once: the verifier walks the loop itself
 * in a few instructions per iteration, on every kernel (bpf_loop, 5.17,
 * is not needed). A step returns non-zero to stop. */
#define STEP_NEXT 0
#define STEP_STOP 1

/* One dest of the service's list, in list order, for the least-connection
 * family (ip_vs_{lc,wlc,sed,nq,fo,ovf,twos}_schedule). */
__noinline int scan_step(__u32 i)
{
	struct xvs_scratch *sc = scratch();
	struct xvs_svc_dests *sd;
	struct scan *s;
	struct dview v;
	__u32 k, id;
	__u64 oh;

	if (!sc || i >= XVS_SVC_DESTS_MAX)
		return STEP_STOP;
	s = &sc->scan;
	k = s->key;
	sd = bpf_map_lookup_elem(&SVC_DESTS, &k);
	if (!sd || i >= sd->n)
		return STEP_STOP;
	id = sd->ids[i];
	if (!dest_get(id, XVS_NO_DEST, &v))
		return STEP_NEXT;
	switch (s->mode) {
	case XVS_SCHED_LC:
		if (v.overloaded || !v.weight)
			return STEP_NEXT;
		oh = overhead(&v);
		if (s->best == XVS_NO_DEST || oh < s->best_oh)
			scan_set(s, id, v.weight, oh);
		return STEP_NEXT;
	case XVS_SCHED_WLC:
	case XVS_SCHED_SED:
		/* weighted_least: the first non-OVERLOAD dest with weight > 0
		 * starts, later ones win when strictly less loaded per weight. */
		if (v.overloaded)
			return STEP_NEXT;
		oh = s->mode == XVS_SCHED_WLC ? overhead(&v) : (__u64)v.active + 1;
		if (s->best == XVS_NO_DEST) {
			if (v.weight)
				scan_set(s, id, v.weight, oh);
		} else if (s->best_oh * v.weight > oh * s->best_w) {
			scan_set(s, id, v.weight, oh);
		}
		return STEP_NEXT;
	case XVS_SCHED_NQ:
		if (v.overloaded || !v.weight)
			return STEP_NEXT;
		oh = (__u64)v.active + 1;
		if (!v.active) {
			scan_set(s, id, v.weight, oh);
			return STEP_STOP;
		}
		if (s->best == XVS_NO_DEST || s->best_oh * v.weight > oh * s->best_w)
			scan_set(s, id, v.weight, oh);
		return STEP_NEXT;
	case XVS_SCHED_FO:
		if (!v.overloaded && v.weight > s->best_w)
			scan_set(s, id, v.weight, 0);
		return STEP_NEXT;
	case XVS_SCHED_OVF:
		if (v.overloaded || !v.weight || v.active > v.weight)
			return STEP_NEXT;
		if (s->best == XVS_NO_DEST || v.weight > s->best_w)
			scan_set(s, id, v.weight, 0);
		return STEP_NEXT;
	case SCAN_TWOS_TOTAL:
		if (v.weight && !v.overloaded) {
			s->total += v.weight;
			s->best = id;
		}
		return STEP_NEXT;
	case XVS_SCHED_TWOS:
		if (!v.weight || v.overloaded)
			return STEP_NEXT;
		s->r1 -= v.weight;
		s->r2 -= v.weight;
		if (s->r1 <= 0 && s->c1 == XVS_NO_DEST) {
			s->c1 = id;
			s->c1_w = v.weight;
			s->c1_oh = overhead(&v);
		}
		if (s->r2 <= 0 && s->c2 == XVS_NO_DEST) {
			s->c2 = id;
			s->c2_w = v.weight;
			s->c2_oh = overhead(&v);
		}
		return s->c1 != XVS_NO_DEST && s->c2 != XVS_NO_DEST;
	case SCAN_LOC_UNDER:
		/* lblc(r)'s is_overloaded: some dest (OVERLOAD or not) with
		 * activeconns * 2 < weight */
		if ((__u64)v.active * 2 < v.weight) {
			s->best = id;
			return STEP_STOP;
		}
		return STEP_NEXT;
	}
	return STEP_STOP;
}

static __always_inline void scan_init(struct scan *s, const struct sched_in *in, __u32 mode)
{
	__builtin_memset(s, 0, sizeof(*s));
	s->key = in->svc_id * 2 + (in->gen & 1);
	s->mode = mode;
	s->best = XVS_NO_DEST;
	s->c1 = XVS_NO_DEST;
	s->c2 = XVS_NO_DEST;
}

/* Runs scan_step over the dest list (at most XVS_SVC_DESTS_MAX). */
static __always_inline void scan_run(void)
{
#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < XVS_SVC_DESTS_MAX; i++)
		if (scan_step(i))
			break;
}

/* The dest the scan of `mode` picks over the service of the scratch's
 * `in`, or XVS_NO_DEST. */
__noinline int scan_pick(__u32 mode)
{
	struct xvs_scratch *sc = scratch();

	if (!sc)
		return XVS_NO_DEST;
	scan_init(&sc->scan, &sc->in, mode);
	scan_run();
	return sc->scan.best;
}

/* ip_vs_twos_schedule */
__noinline int twos_pick(void)
{
	struct xvs_scratch *sc = scratch();
	struct scan *s;
	__u32 ceil;

	if (!sc)
		return XVS_NO_DEST;
	s = &sc->scan;
	scan_init(s, &sc->in, SCAN_TWOS_TOTAL);
	scan_run();
	if (s->best == XVS_NO_DEST)
		return XVS_NO_DEST;
	ceil = s->total + 1 > 0xffffffffULL ? 0xffffffffu : (__u32)(s->total + 1);
	s->r1 = random_below(ceil);
	s->r2 = random_below(ceil);
	s->mode = XVS_SCHED_TWOS;
	scan_run();
	if (s->c1 == XVS_NO_DEST)
		return s->best; /* cannot happen: r1 <= total */
	if (s->c2 != XVS_NO_DEST && (__u64)s->c2_w * s->c1_oh > (__u64)s->c1_w * s->c2_oh)
		return s->c2;
	return s->c1;
}

/* lblc/lblcr's is_overloaded(dest, svc) */
static __always_inline int loc_overloaded(const struct dview *v)
{
	if (v->active <= v->weight)
		return 0;
	return scan_pick(SCAN_LOC_UNDER) != XVS_NO_DEST;
}

/* Step `k` of the scratch's walk: the ring slot k after the schedule
 * position (rr/wrr: empty slots are skipped), or probe offset k
 * (ip_vs_{sh,mh}_get_fallback: an empty slot ends the probe). Stops at
 * the first schedulable dest (weight > 0, not OVERLOAD). */
__noinline int walk_step(__u32 k)
{
	struct xvs_scratch *sc = scratch();
	struct walk *w;
	__u32 slot, id, roffset;

	if (!sc)
		return STEP_STOP;
	w = &sc->walk;
	if (!w->len || k >= w->len)
		return STEP_STOP;
	if (w->probe == WALK_RING) {
		slot = (__u32)((w->p + k) % w->len);
		id = ring_get(w->svc_id, w->gen, slot);
		if (id == XVS_NO_DEST)
			return STEP_NEXT;
	} else {
		roffset = (k + w->ihash) % w->len;
		if (w->probe == WALK_MH)
			slot = mh_hashkey(w->saddr, w->port, roffset) % w->len;
		else
			slot = sh_hashkey(w->saddr, w->port, roffset);
		id = ring_get(w->svc_id, w->gen, slot);
		if (id == XVS_NO_DEST)
			return STEP_STOP;
	}
	if (schedulable(id, XVS_NO_DEST)) {
		w->found = id;
		w->skipped = k;
		return STEP_STOP;
	}
	return STEP_NEXT;
}

/* Walks are as long as a ring or an mh table (XVS_MH_TAB_MAX): run in
 * chunks, so no one loop pushes more branch states than the verifier
 * allows (8192). */
#define WALK_CHUNK 2048
#define WALK_CHUNKS 64
_Static_assert(WALK_CHUNK * WALK_CHUNKS > XVS_MH_TAB_MAX, "walks must cover every table");

__noinline int walk_chunk(__u32 start)
{
#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < WALK_CHUNK; i++)
		if (walk_step(start + i))
			return STEP_STOP;
	return STEP_NEXT;
}

static __always_inline void walk_run(void)
{
#pragma clang loop unroll(disable)
	for (__u32 c = 0; c < WALK_CHUNKS; c++)
		if (walk_chunk(c * WALK_CHUNK))
			break;
}

/* rr/wrr: the ring from the shared position on, skipping dests that are
 * OVERLOAD (or weight 0), at most one full ring. */
__noinline int ring_pick(void)
{
	struct xvs_scratch *sc = scratch();
	struct walk *w;
	__u64 *pos;
	__u32 k;

	if (!sc)
		return XVS_NO_DEST;
	w = &sc->walk;
	__builtin_memset(w, 0, sizeof(*w));
	k = sc->in.svc_id;
	w->svc_id = k;
	w->gen = sc->in.gen;
	w->len = sc->in.ring_len;
	w->found = XVS_NO_DEST;
	w->probe = WALK_RING;
	pos = bpf_map_lookup_elem(&SCHED_POS, &k);
	if (!pos || !w->len)
		return XVS_NO_DEST;
	/* Two CPUs may read one position without atomics (kernels before
	 * 5.12): both then pick the same slot, as a race in rr may. */
	w->p = xvs_fetch_add64(pos, 1);
	walk_run();
	/* Like the kernel's cursor, the next pick starts after this one; no
	 * pick leaves the cursor where it was. */
	if (w->found == XVS_NO_DEST)
		__sync_fetch_and_add(pos, (__u64)-1);
	else if (w->skipped)
		__sync_fetch_and_add(pos, w->skipped);
	return w->found;
}

/* dh, sh, mh: the bucket table (built by user space) */
__noinline int hash_pick(void)
{
	struct xvs_scratch *sc = scratch();
	struct sched_in *in;
	struct walk *w;
	__u32 id;

	if (!sc)
		return XVS_NO_DEST;
	in = &sc->in;
	w = &sc->walk;
	if (!in->ring_len)
		return XVS_NO_DEST;
	if (in->sched == XVS_SCHED_DH) {
		id = ring_get(in->svc_id, in->gen, dh_hashkey(in->daddr));
		return id != XVS_NO_DEST && schedulable(id, XVS_NO_DEST) ? id : XVS_NO_DEST;
	}
	__builtin_memset(w, 0, sizeof(*w));
	w->svc_id = in->svc_id;
	w->gen = in->gen;
	w->len = in->ring_len;
	w->saddr = in->saddr;
	w->found = XVS_NO_DEST;
	if (in->flags & XVS_SVC_F_SCHED2)
		w->port = in->sport;
	w->probe = in->sched == XVS_SCHED_MH ? WALK_MH : WALK_SH;
	w->ihash = w->probe == WALK_MH ? mh_hashkey(w->saddr, w->port, 0) % w->len
				       : sh_hashkey(w->saddr, w->port, 0);
	id = ring_get(in->svc_id, in->gen, w->ihash);
	if (id == XVS_NO_DEST)
		return XVS_NO_DEST;
	if (schedulable(id, XVS_NO_DEST))
		return id;
	if (!(in->flags & XVS_SVC_F_SCHED1))
		return XVS_NO_DEST;
	walk_run();
	return w->found;
}

/* A new cache entry for the scratch's `lk` naming one dest. */
static __always_inline void lblc_insert(struct xvs_scratch *sc, __u32 id, __u64 now)
{
	struct xvs_lblc *ne = &sc->lblc;

	__builtin_memset(ne, 0, sizeof(*ne));
	ne->lastuse_ns = now;
	ne->lastmod_ns = now;
	ne->n = 1;
	ne->dests[0] = id;
	bpf_map_update_elem(&LBLC_MAP, &sc->lk, ne, BPF_ANY);
}

/* ip_vs_lblc_schedule */
__noinline int lblc_pick(void)
{
	struct xvs_scratch *sc = scratch();
	struct xvs_lblc *e;
	struct dview v;
	__u32 id;

	if (!sc)
		return XVS_NO_DEST;
	sc->lk.svc_id = sc->in.svc_id;
	sc->lk.daddr = sc->in.daddr_be;
	e = bpf_map_lookup_elem(&LBLC_MAP, &sc->lk);
	if (e) {
		e->lastuse_ns = sc->in.now;
		id = e->dests[0];
		if (dest_get(id, sc->in.svc_id, &v) && v.weight && !loc_overloaded(&v))
			return id;
	}
	id = (__u32)scan_pick(XVS_SCHED_WLC);
	if (id == XVS_NO_DEST)
		return id;
	e = bpf_map_lookup_elem(&LBLC_MAP, &sc->lk);
	if (e && e->dests[0] == id)
		return id;
	lblc_insert(sc, id, sc->in.now);
	return id;
}

/* One member of the scratch's lblcr set (re-read from LBLC_MAP by key). */
__noinline int set_step(__u32 i)
{
	struct xvs_scratch *sc = scratch();
	struct setscan *s;
	struct xvs_lblc *e;
	struct dview v;
	__u32 w, id;
	__u64 oh;

	if (!sc || i >= XVS_LBLCR_SET_MAX)
		return STEP_STOP;
	s = &sc->set;
	e = bpf_map_lookup_elem(&LBLC_MAP, &s->key);
	if (!e || i >= e->n)
		return STEP_STOP;
	id = e->dests[i];
	if (!s->max) {
		if (!dest_get(id, s->svc_id, &v) || v.overloaded)
			return STEP_NEXT;
		oh = overhead(&v);
		if (s->best == XVS_NO_DEST) {
			if (v.weight) {
				s->best = id;
				s->bw = v.weight;
				s->boh = oh;
			}
		} else if (s->boh * v.weight > oh * s->bw) {
			s->best = id;
			s->bw = v.weight;
			s->boh = oh;
		}
		return STEP_NEXT;
	}
	if (dest_get(id, s->svc_id, &v)) {
		w = v.weight;
		oh = overhead(&v);
	} else {
		w = 0;
		oh = 0;
	}
	if (s->best == XVS_NO_DEST) {
		if (w) {
			s->best = i;
			s->bw = w;
			s->boh = oh;
		}
	} else if (s->boh * w < oh * s->bw && w) {
		s->best = i;
		s->bw = w;
		s->boh = oh;
	}
	return STEP_NEXT;
}

/* Over the set of the scratch's `lk`: max = 0, the least loaded member
 * (dest id); 1, the index of the most loaded one (removed dests count as
 * weight 0); XVS_NO_DEST when none. */
__noinline int set_scan(__u32 max)
{
	struct xvs_scratch *sc = scratch();

	if (!sc)
		return XVS_NO_DEST;
	__builtin_memset(&sc->set, 0, sizeof(sc->set));
	sc->set.key = sc->lk;
	sc->set.svc_id = sc->in.svc_id;
	sc->set.max = max;
	sc->set.best = XVS_NO_DEST;
#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < XVS_LBLCR_SET_MAX; i++)
		if (set_step(i))
			break;
	return sc->set.best;
}

/* ip_vs_lblcr_schedule. Set updates are not atomic across CPUs: a race
 * can lose an insert, never name a dest of another service. */
__noinline int lblcr_pick(void)
{
	struct xvs_scratch *sc = scratch();
	struct xvs_lblc *e;
	struct dview v;
	__u32 least, id, n, svc_id;
	__u64 now;
	int m, found = 0;

	if (!sc)
		return XVS_NO_DEST;
	svc_id = sc->in.svc_id;
	now = sc->in.now;
	sc->lk.svc_id = svc_id;
	sc->lk.daddr = sc->in.daddr_be;
	e = bpf_map_lookup_elem(&LBLC_MAP, &sc->lk);
	if (!e) {
		id = (__u32)scan_pick(XVS_SCHED_WLC);
		if (id == XVS_NO_DEST)
			return id;
		lblc_insert(sc, id, now);
		return id;
	}
	e->lastuse_ns = now;
	least = (__u32)set_scan(0);
	e = bpf_map_lookup_elem(&LBLC_MAP, &sc->lk);
	if (!e)
		return least;
	n = e->n;
	if (n > XVS_LBLCR_SET_MAX)
		n = XVS_LBLCR_SET_MAX;
	if (n > 1 && now > e->lastmod_ns + XVS_LBLC_EXPIRATION_NS) {
		m = set_scan(1);
		e = bpf_map_lookup_elem(&LBLC_MAP, &sc->lk);
		if (!e)
			return least;
		if (m >= 0) {
			for (int i = 0; i < XVS_LBLCR_SET_MAX - 1; i++)
				if (i >= m && i + 1 < n)
					e->dests[i] = e->dests[i + 1];
			n--;
			e->n = n;
			e->lastmod_ns = now;
		}
	}
	if (least != XVS_NO_DEST && dest_get(least, svc_id, &v) && !loc_overloaded(&v))
		return least;
	id = (__u32)scan_pick(XVS_SCHED_WLC);
	if (id == XVS_NO_DEST)
		return id;
	e = bpf_map_lookup_elem(&LBLC_MAP, &sc->lk);
	if (!e)
		return id;
	for (int i = 0; i < XVS_LBLCR_SET_MAX; i++)
		if (i < n && e->dests[i] == id)
			found = 1;
	if (!found) {
		if (n >= XVS_LBLCR_SET_MAX)
			n = XVS_LBLCR_SET_MAX - 1; /* the oldest member goes */
		for (int i = XVS_LBLCR_SET_MAX - 1; i > 0; i--)
			if (i <= (int)n)
				e->dests[i] = e->dests[i - 1];
		e->dests[0] = id;
		e->n = n + 1;
		e->lastmod_ns = now;
	}
	return id;
}

/* A dest for the new connection of the scratch's `in`, or XVS_NO_DEST. */
__noinline int xvs_schedule(void)
{
	struct xvs_scratch *sc = scratch();

	if (!sc)
		return XVS_NO_DEST;
	switch (sc->in.sched) {
	case XVS_SCHED_RR:
	case XVS_SCHED_WRR:
		return ring_pick();
	case XVS_SCHED_DH:
	case XVS_SCHED_SH:
	case XVS_SCHED_MH:
		return hash_pick();
	case XVS_SCHED_LBLC:
		return lblc_pick();
	case XVS_SCHED_LBLCR:
		return lblcr_pick();
	case XVS_SCHED_TWOS:
		return twos_pick();
	case XVS_SCHED_LC:
	case XVS_SCHED_WLC:
	case XVS_SCHED_SED:
	case XVS_SCHED_NQ:
	case XVS_SCHED_FO:
	case XVS_SCHED_OVF:
		return scan_pick(sc->in.sched);
	}
	return XVS_NO_DEST;
}

/* ---- connection creation ---- */

/* SVC_MAP: the exact <proto, vaddr, vport>, else the port-0 service of
 * the address (persistent "all ports" services), as ip_vs_service_find. */
static __always_inline struct xvs_svc *svc_lookup(const struct xvs_conn_key *k, __be16 *svc_port)
{
	struct xvs_svc_key skey = {};
	struct xvs_svc *svc;

	skey.addr = k->daddr;
	skey.port = k->dport;
	skey.proto = k->proto;
	svc = bpf_map_lookup_elem(&SVC_MAP, &skey);
	if (svc) {
		*svc_port = k->dport;
		return svc;
	}
	skey.port = 0;
	*svc_port = 0;
	return bpf_map_lookup_elem(&SVC_MAP, &skey);
}

static __always_inline void persist_add(__u32 dest_id, int delta)
{
	struct xvs_dest_conns *dc = bpf_map_lookup_elem(&DEST_CONNS, &dest_id);

	if (dc)
		__sync_fetch_and_add(&dc->persist, delta);
}

#define FTPPORT 21

static __always_inline void tmpl_key(const struct sched_in *in, const struct xvs_conn_key *fkey,
				     struct xvs_tmpl_key *tk)
{
	tk->caddr = fkey->saddr & in->netmask;
	tk->vaddr = fkey->daddr;
	tk->vport = (fkey->dport == in->svc_port && in->svc_port != bpf_htons(FTPPORT)) ? fkey->dport
											: 0;
	tk->proto = fkey->proto;
	tk->pad = 0;
}

/* ip_vs_control_assure_ct: marks the template of the persistent
 * connection client saddr -> daddr:dport (`port_proto` = dport << 8 |
 * proto, network order port) assured. A global function of scalars: its
 * keys live on its own stack. */
__noinline int tmpl_assure(__u32 saddr, __u32 daddr, __u32 port_proto)
{
	struct xvs_conn_key k = {};
	struct xvs_tmpl_key tk = {};
	struct xvs_svc *svc;
	struct xvs_tmpl *t;
	__be16 sp;

	k.saddr = saddr;
	k.daddr = daddr;
	k.dport = (__be16)(port_proto >> 8);
	k.proto = (__u8)port_proto;
	svc = svc_lookup(&k, &sp);
	if (!svc)
		return 0;
	tk.caddr = saddr & svc->netmask;
	tk.vaddr = daddr;
	tk.vport = (k.dport == sp && sp != bpf_htons(FTPPORT)) ? k.dport : 0;
	tk.proto = k.proto;
	t = bpf_map_lookup_elem(&PERSIST_MAP, &tk);
	if (t && !(t->flags & XVS_TMPL_F_ASSURED))
		t->flags |= XVS_TMPL_F_ASSURED;
	return 0;
}

/* Once per persistent connection (`fc`, forward key `fkey`): when it got
 * ESTABLISHED or answered. */
static __always_inline void assure_once(struct xvs_conn *fc, const struct xvs_conn_key *fkey)
{
	if ((fc->flags & (XVS_CONN_F_PERSIST | XVS_CONN_F_ASSURED)) != XVS_CONN_F_PERSIST)
		return;
	fc->flags |= XVS_CONN_F_ASSURED;
	tmpl_assure(fkey->saddr, fkey->daddr, (__u32)fkey->dport << 8 | fkey->proto);
}

/* ip_vs_sched_persist, first half: the dest of the client's template, or
 * XVS_NO_DEST when there is none usable (then schedule and
 * persist_create). */
__noinline int persist_pick(void)
{
	struct xvs_scratch *sc = scratch();
	struct xvs_tmpl *t;
	struct dview dv;
	__u32 dest_id;

	if (!sc)
		return XVS_NO_DEST;
	tmpl_key(&sc->in, &sc->fkey, &sc->tk);
	t = bpf_map_lookup_elem(&PERSIST_MAP, &sc->tk);
	if (!t)
		return XVS_NO_DEST;
	/* ip_vs_check_template: used while its dest is in the service
	 * (weight 0 and OVERLOAD do not matter). */
	dest_id = t->dest_id;
	if (t->svc_id == sc->in.svc_id && dest_get(dest_id, sc->in.svc_id, &dv)) {
		t->last_seen_ns = sc->in.now;
		cnt(XVS_CNT_PERSIST_HIT);
		return dest_id;
	}
	if (bpf_map_delete_elem(&PERSIST_MAP, &sc->tk) == 0)
		persist_add(dest_id, -1);
	return XVS_NO_DEST;
}

/* ip_vs_sched_persist, second half: a template for the freshly scheduled
 * `dest_id`. Returns the dest to use (another CPU's template wins a race),
 * or XVS_NO_DEST with the scratch's `verdict` set. */
__noinline int persist_create(__u32 dest_id)
{
	struct xvs_scratch *sc = scratch();
	struct xvs_tmpl *t, *nt;
	struct xvs_dest *d;
	int err; /* int: 6.1 leaves a map op's error zero-extended */

	if (!sc)
		return XVS_NO_DEST;
	tmpl_key(&sc->in, &sc->fkey, &sc->tk);
	d = bpf_map_lookup_elem(&DEST_MAP, &dest_id);
	if (!d) {
		sc->verdict = verdict(XVS_CNT_PASS_NO_DEST, ACT_PASS);
		return XVS_NO_DEST;
	}
	nt = &sc->nt;
	__builtin_memset(nt, 0, sizeof(*nt));
	nt->last_seen_ns = sc->in.now;
	nt->svc_id = sc->in.svc_id;
	nt->dest_id = dest_id;
	nt->daddr = d->addr;
	nt->dport = sc->tk.vport ? d->port : 0;
	nt->timeout = sc->in.timeout;
	err = bpf_map_update_elem(&PERSIST_MAP, &sc->tk, nt, BPF_NOEXIST);
	if (err == -EEXIST_) {
		t = bpf_map_lookup_elem(&PERSIST_MAP, &sc->tk);
		if (!t) {
			sc->verdict = verdict(XVS_CNT_PASS_STALE, ACT_PASS);
			return XVS_NO_DEST;
		}
		return t->dest_id;
	}
	if (err) {
		sc->verdict = verdict(XVS_CNT_DROP_TMPL_FULL, ACT_DROP);
		return XVS_NO_DEST;
	}
	cnt(XVS_CNT_PERSIST_NEW);
	persist_add(dest_id, 1);
	return dest_id;
}

/* The reply tuple `rk` of a new NAT connection is another connection's:
 * the same client address and port reached the same real server through
 * another virtual service (or the old connection lingers). Replies cannot
 * tell them apart; as in IPVS, whose output lookup finds the newest entry
 * of a hash chain first, the new connection gets them. The old forward
 * entry stays until it expires; its expiry leaves this reply entry alone
 * (its `peer` no longer names it). Returns 0 or the map error. */
static __always_inline int reply_takeover(struct xvs_scratch *sc)
{
	cnt(XVS_CNT_REPLY_TAKEOVER);
	return bpf_map_update_elem(&CONN_MAP, &sc->rk, &sc->fval, BPF_ANY);
}

/* Deletes the reply entry `rk` of the forward entry `fkey` (already
 * deleted), unless a newer connection took it over. */
static __always_inline void reply_delete(const struct xvs_conn_key *rk,
					 const struct xvs_conn_key *fkey)
{
	struct xvs_conn *r = bpf_map_lookup_elem(&CONN_MAP, rk);

	if (r && r->peer.saddr == fkey->saddr && r->peer.daddr == fkey->daddr &&
	    r->peer.sport == fkey->sport && r->peer.dport == fkey->dport &&
	    r->peer.proto == fkey->proto)
		bpf_map_delete_elem(&CONN_MAP, rk);
}

/* One-packet scheduling (-o): no connection. A NAT reply needs its
 * translation, so a reply-only entry (expired by xvsd after the udp
 * timeout) remembers VIP:vport for it. Returns -1 or a verdict. */
static __always_inline int new_ops(struct xvs_scratch *sc, __u64 now)
{
	struct xvs_conn *fval = &sc->fval, *old;
	int err; /* int: 6.1 leaves a map op's error zero-extended */

	fval->flags |= XVS_CONN_F_OPS;
	sc->out = *fval;
	cnt(XVS_CNT_OPS);
	if (fval->fwd == XVS_FWD_MASQ) {
		fval->peer = sc->fkey;
		fval->flags = XVS_CONN_F_REPLY | XVS_CONN_F_OPS;
		err = bpf_map_update_elem(&CONN_MAP, &sc->rk, fval, BPF_NOEXIST);
		if (err == -EEXIST_) {
			old = bpf_map_lookup_elem(&CONN_MAP, &sc->rk);
			if (old && (old->flags & XVS_CONN_F_OPS)) {
				old->last_seen_ns = now;
				old->peer = sc->fkey;
				old->svc_id = fval->svc_id;
				old->dest_id = fval->dest_id;
			} else if (reply_takeover(sc)) {
				return verdict(XVS_CNT_DROP_CONN_FULL, ACT_DROP);
			}
		} else if (err) {
			return verdict(XVS_CNT_DROP_CONN_FULL, ACT_DROP);
		}
	}
	stats_conn(fval->svc_id, fval->dest_id);
	return -1;
}

/* Inserts the scratch's forward entry `fval` (and, for NAT, its reply
 * entry under `rk`). Returns -1 or a verdict. */
static __always_inline int new_entries(struct xvs_scratch *sc)
{
	struct xvs_conn *fval = &sc->fval, *c;
	int err; /* int: 6.1 leaves a map op's error zero-extended */

	err = bpf_map_update_elem(&CONN_MAP, &sc->fkey, fval, BPF_NOEXIST);
	if (err == -EEXIST_) {
		/* Another CPU created it first: use theirs. */
		c = bpf_map_lookup_elem(&CONN_MAP, &sc->fkey);
		if (!c)
			return verdict(XVS_CNT_PASS_STALE, ACT_PASS);
		sc->out = *c;
		return -1;
	}
	if (err)
		return verdict(XVS_CNT_DROP_CONN_FULL, ACT_DROP);
	/* DR/TUN: replies bypass the director, no reply entry. */
	sc->out = *fval;
	if (fval->fwd == XVS_FWD_MASQ) {
		fval->peer = sc->fkey;
		fval->flags = XVS_CONN_F_REPLY;
		err = bpf_map_update_elem(&CONN_MAP, &sc->rk, fval, BPF_NOEXIST);
		if (err == -EEXIST_)
			err = reply_takeover(sc);
		if (err) {
			bpf_map_delete_elem(&CONN_MAP, &sc->fkey);
			return verdict(XVS_CNT_DROP_CONN_FULL, ACT_DROP);
		}
	}
	cnt(XVS_CNT_CONN_NEW);
	dest_bind(sc->out.dest_id, sc->out.state);
	stats_conn(sc->out.svc_id, sc->out.dest_id);
	return -1;
}

/* Schedules the new flow of the scratch's `fkey` and creates its
 * connection entries; the scratch's `out` gets a copy of the forward
 * entry. Returns -1, or a verdict when the packet cannot be forwarded.
 * One-packet (-o) UDP services get no forward entry (NAT: a reply entry
 * only, see docs/design.md). */
__noinline int xvs_new_conn(__u32 tcpflags, __u64 now)
{
	struct xvs_scratch *sc = scratch();
	struct xvs_conn_key *fkey;
	struct sched_in *in;
	struct xvs_conn *fval;
	struct xvs_svc *svc;
	struct xvs_dest *dest;
	__be16 svc_port, rport;
	__u32 dest_id, svc_flags;
	int persistent;

	if (!sc)
		return ACT_PASS;
	fkey = &sc->fkey;
	svc = svc_lookup(fkey, &svc_port);
	if (!svc)
		return verdict(XVS_CNT_PASS_NO_SVC, ACT_PASS);
	if (fkey->proto == IPPROTO_TCP && (!(tcpflags & TCPF_SYN) || (tcpflags & TCPF_RST)))
		return verdict(XVS_CNT_PASS_TCP_NO_CONN, ACT_PASS);
	svc_flags = svc->flags;
	in = &sc->in;
	__builtin_memset(in, 0, sizeof(*in));
	in->svc_id = svc->id;
	in->gen = svc->gen & 1;
	in->sched = svc->sched;
	in->flags = svc_flags;
	in->ring_len = svc->ring_len;
	in->saddr = bpf_ntohl(fkey->saddr);
	in->daddr = bpf_ntohl(fkey->daddr);
	in->daddr_be = fkey->daddr;
	in->sport = bpf_ntohs(fkey->sport);
	in->netmask = svc->netmask;
	in->timeout = svc->timeout;
	in->svc_port = svc_port;
	in->now = now;
	persistent = svc_flags & XVS_SVC_F_PERSISTENT;

	dest_id = persistent ? (__u32)persist_pick() : XVS_NO_DEST;
	if (dest_id == XVS_NO_DEST) {
		dest_id = (__u32)xvs_schedule();
		if (dest_id == XVS_NO_DEST)
			return verdict(XVS_CNT_PASS_NO_DEST, ACT_PASS);
		if (persistent) {
			dest_id = (__u32)persist_create(dest_id);
			if (dest_id == XVS_NO_DEST)
				return sc->verdict;
		}
	}
	fval = &sc->fval;
	__builtin_memset(fval, 0, sizeof(*fval));
	fval->dest_id = dest_id;
	dest = bpf_map_lookup_elem(&DEST_MAP, &fval->dest_id);
	if (!dest || !(dest->flags & XVS_DEST_F_AVAILABLE))
		return verdict(XVS_CNT_PASS_NO_DEST, ACT_PASS);
	if (dest->fwd > XVS_FWD_TUNNEL)
		return verdict(XVS_CNT_PASS_FWD_UNSUPP, ACT_PASS);
	/* The dest's port for the service port; a port-0 service (or a dest
	 * without port) keeps the port the client asked for. */
	rport = (fkey->dport == svc_port && dest->port) ? dest->port : fkey->dport;

	__builtin_memset(&sc->rk, 0, sizeof(sc->rk));
	sc->rk.saddr = dest->addr;
	sc->rk.daddr = fkey->saddr;
	sc->rk.sport = rport;
	sc->rk.dport = fkey->sport;
	sc->rk.proto = fkey->proto;

	fval->last_seen_ns = now;
	fval->peer = sc->rk;
	fval->svc_id = in->svc_id;
	fval->state = fkey->proto == IPPROTO_TCP
			      ? tcp_next_state(dest->fwd == XVS_FWD_MASQ ? TCP_DIR_INPUT
									  : TCP_DIR_INPUT_ONLY,
					       tcpflags, XVS_S_NONE)
			      : XVS_S_UDP;
	fval->fwd = dest->fwd;
	if (persistent)
		fval->flags |= XVS_CONN_F_PERSIST;

	if (fkey->proto == IPPROTO_UDP && (svc_flags & XVS_SVC_F_ONEPACKET))
		return new_ops(sc, now);
	return new_entries(sc);
}

/* ---- main ---- */

#ifdef XVS_TC
SEC("tc")
int xvs_tc(xvs_ctx *ctx)
#else
SEC("xdp")
int xvs_xdp(xvs_ctx *ctx)
#endif
{
	void *data, *data_end;
	struct ethhdr *eth;
	struct iphdr *ip;
	struct xvs_conn_key key = {};
	struct xvs_conn *c, *fc, cv = {};
	__be16 *ports;
	__u16 *csum;
	void *l4;
	__u32 ihl, tot_len;
	__u8 tcpflags = 0;
	__u64 now;
	int is_udp, v = ACT_PASS;
	__u32 l4off;

	cnt(XVS_CNT_RX);
#ifdef XVS_TC
	xvs_pull_headers(ctx, XVS_PULL_LEN);
#endif
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return verdict(XVS_CNT_PASS_TRUNCATED, ACT_PASS);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return verdict(XVS_CNT_PASS_NOT_IP, ACT_PASS);
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return verdict(XVS_CNT_PASS_TRUNCATED, ACT_PASS);
	ihl = ip->ihl * 4;
	if (ip->version != 4 || ihl < sizeof(*ip))
		return verdict(XVS_CNT_PASS_BAD_IP, ACT_PASS);
	tot_len = bpf_ntohs(ip->tot_len);
	if (tot_len < ihl)
		return verdict(XVS_CNT_PASS_BAD_IP, ACT_PASS);
#ifdef XVS_TC
	/* the payload may sit in pages: check against the skb length */
	if (sizeof(*eth) + tot_len > ctx->len)
		return verdict(XVS_CNT_PASS_TRUNCATED, ACT_PASS);
#else
	if ((void *)ip + tot_len > data_end)
		return verdict(XVS_CNT_PASS_TRUNCATED, ACT_PASS);
#endif
	if (ip->frag_off & bpf_htons(IP_MF_OFFSET))
		return verdict(XVS_CNT_PASS_FRAGMENT, ACT_PASS);
	l4 = (void *)ip + ihl;
	l4off = sizeof(*eth) + ihl;

	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *th = l4;

		if ((void *)(th + 1) > data_end)
			return verdict(XVS_CNT_PASS_TRUNCATED, ACT_PASS);
		tcpflags = ((__u8 *)th)[13];
		csum = &th->check;
		is_udp = 0;
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *uh = l4;

		if ((void *)(uh + 1) > data_end)
			return verdict(XVS_CNT_PASS_TRUNCATED, ACT_PASS);
		csum = &uh->check;
		is_udp = 1;
	} else if (ip->protocol == IPPROTO_ICMP) {
		return handle_icmp(ctx, eth, ip, l4, data_end);
	} else {
		return verdict(XVS_CNT_PASS_PROTO, ACT_PASS);
	}
	ports = l4;

	key.saddr = ip->saddr;
	key.daddr = ip->daddr;
	key.sport = ports[0];
	key.dport = ports[1];
	key.proto = ip->protocol;

	c = bpf_map_lookup_elem(&CONN_MAP, &key);
	if (c && (c->flags & XVS_CONN_F_REPLY)) {
		/* Real server -> client. */
		if (ip->ttl <= 1)
			return verdict(XVS_CNT_PASS_TTL, ACT_PASS);
		if (c->flags & XVS_CONN_F_OPS) {
			/* one-packet NAT reply: no connection state */
			stats_add(c->svc_id, c->dest_id, 0, tot_len);
			if (nat_rewrite(ctx, ip, ports, csum, l4off, is_udp, 0, c->peer.daddr,
					c->peer.dport))
				return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
			cnt(XVS_CNT_NAT_OUT);
			return xmit(ctx, c->peer.dport, key.dport);
		}
		fc = bpf_map_lookup_elem(&CONN_MAP, &c->peer);
		if (!fc)
			return verdict(XVS_CNT_PASS_STALE, ACT_PASS);
		now = xvs_now();
		if (fc->last_seen_ns != now)
			fc->last_seen_ns = now;
		if (!is_udp)
			tcp_transition(fc, TCP_DIR_OUTPUT, tcpflags);
		if (is_udp || fc->state == XVS_S_ESTABLISHED)
			assure_once(fc, &c->peer);
		stats_add(c->svc_id, c->dest_id, 0, tot_len);
		if (nat_rewrite(ctx, ip, ports, csum, l4off, is_udp, 0, c->peer.daddr,
				c->peer.dport))
			return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
		cnt(XVS_CNT_NAT_OUT);
		return xmit(ctx, c->peer.dport, key.dport);
	}

	/* Client -> VIP. */
	if (c && !is_udp && (tcpflags & TCPF_SYN) && !(tcpflags & TCPF_RST) &&
	    !(c->flags & XVS_CONN_F_PERSIST)) {
		/* conn_reuse_mode done right: a SYN on a connection in
		 * TIME_WAIT or CLOSE starts a new connection, scheduled afresh
		 * now (no "1 second SYN drop"). Connections controlled by a
		 * persistence template keep their entry, as in IPVS. */
		__u32 st = *(volatile __u32 *)&c->state;

		if (st == XVS_S_TIME_WAIT || st == XVS_S_CLOSE) {
			struct xvs_conn old = *c;

			if (bpf_map_delete_elem(&CONN_MAP, &key) == 0) {
				if (old.fwd == XVS_FWD_MASQ)
					reply_delete(&old.peer, &key);
				dest_unbind(old.dest_id, st);
			}
			cnt(XVS_CNT_CONN_REUSE);
			c = NULL;
		}
	}
	if (!c) {
		/* Cheap pre-check so non-VIP traffic is not TTL-counted. */
		__be16 sp;

		if (!svc_lookup(&key, &sp))
			return verdict(XVS_CNT_PASS_NO_SVC, ACT_PASS);
	}
	if (ip->ttl <= 1)
		return verdict(XVS_CNT_PASS_TTL, ACT_PASS);
	now = xvs_now();
	if (!c) {
		/* new_conn applies the first event (NONE -> SYN_RECV). */
		struct xvs_scratch *sc = scratch();

		if (!sc)
			return verdict(XVS_CNT_PASS_STALE, ACT_PASS);
		sc->fkey = key;
		v = xvs_new_conn(tcpflags, now);
		if (v >= 0)
			return v;
		cv.svc_id = sc->out.svc_id;
		cv.dest_id = sc->out.dest_id;
		cv.fwd = sc->out.fwd;
		cv.peer = sc->out.peer;
	} else {
		/* A deleted dest's connections stay (IPVS's dest trash); their
		 * packets are dropped, the connection not refreshed (IPVS with
		 * expire_nodest_conn 0, its default). */
		struct xvs_dest *d = bpf_map_lookup_elem(&DEST_MAP, &c->dest_id);

		if (!d || !(d->flags & XVS_DEST_F_AVAILABLE))
			return verdict(XVS_CNT_DROP_DEST_GONE, ACT_DROP);
		if (c->last_seen_ns != now)
			c->last_seen_ns = now;
		if (!is_udp) {
			tcp_transition(c, c->fwd == XVS_FWD_MASQ ? TCP_DIR_INPUT : TCP_DIR_INPUT_ONLY,
				       tcpflags);
			if (c->state == XVS_S_ESTABLISHED)
				assure_once(c, &key);
		}
		cv.svc_id = c->svc_id;
		cv.dest_id = c->dest_id;
		cv.fwd = c->fwd;
		cv.peer = c->peer;
	}
	stats_add(cv.svc_id, cv.dest_id, 1, tot_len);
	if (cv.fwd != XVS_FWD_MASQ)
		return fwd_dest(ctx, cv.dest_id, &key, 1);
	if (nat_rewrite(ctx, ip, ports, csum, l4off, is_udp, 1, cv.peer.saddr, cv.peer.sport))
		return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
	cnt(XVS_CNT_NAT_IN);
	return xmit(ctx, key.sport, cv.peer.sport);
}

#ifndef XVS_TC
/* For testbeds: lets a veth peer receive XDP_REDIRECTed frames. */
SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
#endif
