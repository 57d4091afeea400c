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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 20);
	__type(key, struct xvs_conn_key);
	__type(value, struct xvs_conn);
} CONN_MAP SEC(".maps");

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

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_CNT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} XVS_CNT SEC(".maps");

_Static_assert(XVS_CNT_MAX <= XVS_CNT_SLOTS, "XVS_CNT_SLOTS too small");

const volatile struct xvs_abi xvs_abi = {
	.version = XVS_ABI_VERSION,
	.cnt_max = XVS_CNT_MAX,
};

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
	if (__sync_val_compare_and_swap(&fc->state, old, new) != old)
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

/* Sets the MACs the fib lookup found and sends the frame out. */
static __always_inline int fib_out(struct xdp_md *ctx, struct bpf_fib_lookup *fib)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return verdict(XVS_CNT_DROP_ENCAP, XDP_DROP);
	__builtin_memcpy(eth->h_dest, fib->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib->smac, ETH_ALEN);
	if (fib->ifindex == ctx->ingress_ifindex)
		return verdict(XVS_CNT_TX, XDP_TX);
	cnt(XVS_CNT_REDIRECT);
	return bpf_redirect(fib->ifindex, 0);
}

/* Next hop for a rewritten packet. On any fib failure the rewritten packet
 * goes to the kernel, which forwards it (and decrements TTL) itself. */
static __always_inline int xmit(struct xdp_md *ctx, struct ethhdr *eth, struct iphdr *ip,
				__be16 sport, __be16 dport)
{
	struct bpf_fib_lookup fib = {};
	long rc;

	fib.family = AF_INET;
	fib.tos = ip->tos;
	fib.l4_protocol = ip->protocol;
	fib.sport = sport;
	fib.dport = dport;
	fib.tot_len = bpf_ntohs(ip->tot_len);
	fib.ifindex = ctx->ingress_ifindex;
	fib.ipv4_src = ip->saddr;
	fib.ipv4_dst = ip->daddr;

	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		ip_decrease_ttl(ip);
		__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
		if (fib.ifindex == ctx->ingress_ifindex)
			return verdict(XVS_CNT_TX, XDP_TX);
		cnt(XVS_CNT_REDIRECT);
		return bpf_redirect(fib.ifindex, 0);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return verdict(XVS_CNT_FIB_NO_NEIGH, XDP_PASS);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return verdict(XVS_CNT_FIB_FRAG_NEEDED, XDP_PASS);
	return verdict(XVS_CNT_FIB_OTHER, XDP_PASS);
}

/* ---- NAT rewrite of the L4 packet itself ---- */

/* Rewrite destination (dst=1) or source (dst=0) address and port. `csum`
 * points at the L4 checksum; udp says a zero checksum means "none". */
static __always_inline void nat_l4(struct iphdr *ip, __be16 *ports, __u16 *csum, int udp, int dst,
				   __be32 addr, __be16 port)
{
	__be32 old_addr = dst ? ip->daddr : ip->saddr;
	__be16 old_port = dst ? ports[1] : ports[0];

	if (!udp || *csum) {
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

/* ---- DR and TUN ---- */

/* Ones' complement sum of `len` bytes of the frame from offset `off`, plus
 * `seed`, folded to 16 bits (not inverted); -1 when the frame is shorter.
 * A global function, so the verifier checks its loops once. */
__noinline int xvs_csum_frame(struct xdp_md *ctx, __u32 off, __u32 len, __u32 seed)
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
static __always_inline int icmp_frag_needed(struct xdp_md *ctx, __u32 mtu)
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
		return verdict(XVS_CNT_DROP_TOO_BIG, XDP_DROP);
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return verdict(XVS_CNT_DROP_TOO_BIG, XDP_DROP);
	ihl = (ip->ihl * 4) & 0x3c;
	if (ihl < sizeof(*ip) || (void *)ip + ihl + 8 > data_end)
		return verdict(XVS_CNT_DROP_TOO_BIG, XDP_DROP);
	__builtin_memcpy(&e, eth, sizeof(e));
	saddr = ip->saddr;
	daddr = ip->daddr;
	old_len = data_end - data;
	len = sizeof(*nip) + sizeof(*ic) + ihl + 8; /* new IP total length */
	delta = (int)(sizeof(*eth) + len) - (int)(old_len + 28);
	if (delta > 0)
		return verdict(XVS_CNT_DROP_TOO_BIG, XDP_DROP);

	/* 28 new bytes in front: the old IP header then sits exactly where
	 * the ICMP payload starts (eth 14 + IP 20 + ICMP 8). */
	if (bpf_xdp_adjust_head(ctx, -28))
		return verdict(XVS_CNT_DROP_ENCAP, XDP_DROP);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	nip = (void *)(eth + 1);
	ic = (void *)(nip + 1);
	if ((void *)(ic + 1) > data_end)
		return verdict(XVS_CNT_DROP_ENCAP, XDP_DROP);
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
			return verdict(XVS_CNT_DROP_ENCAP, XDP_DROP);
		s += *w;
	}
	ic->checksum = (__u16)~csum_fold(s);
	if (delta && bpf_xdp_adjust_tail(ctx, delta))
		return verdict(XVS_CNT_DROP_ENCAP, XDP_DROP);
	return verdict(XVS_CNT_ICMP_FRAG_NEEDED, XDP_TX);
}

/* DR (ip_vs_dr_xmit): the IP packet keeps its addresses; only the
 * Ethernet header changes, towards the real server's MAC. The TTL is
 * decremented because the director routes the packet (IPVS does the same
 * in __ip_vs_get_out_rt). The packet cannot go to the kernel (its
 * destination is a local VIP): every failure drops, counted. */
static __always_inline int dr_xmit(struct xdp_md *ctx, __be32 rs, int can_icmp)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct bpf_fib_lookup fib = {};
	struct iphdr *ip;
	long rc;

	if ((void *)(eth + 1) > data_end)
		return verdict(XVS_CNT_PASS_TRUNCATED, XDP_PASS);
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return verdict(XVS_CNT_PASS_TRUNCATED, XDP_PASS);

	fib.family = AF_INET;
	fib.tos = ip->tos;
	fib.l4_protocol = ip->protocol;
	fib.tot_len = bpf_ntohs(ip->tot_len);
	fib.ifindex = ctx->ingress_ifindex;
	fib.ipv4_src = ip->saddr;
	fib.ipv4_dst = rs;
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		ip_decrease_ttl(ip);
		cnt(XVS_CNT_DR_IN);
		return fib_out(ctx, &fib);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return verdict(XVS_CNT_DROP_NO_NEIGH, XDP_DROP);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		if (can_icmp && (ip->frag_off & bpf_htons(IP_DF)) && fib.mtu_result >= IP_MIN_MTU)
			return icmp_frag_needed(ctx, fib.mtu_result);
		return verdict(XVS_CNT_DROP_TOO_BIG, XDP_DROP);
	}
	return verdict(XVS_CNT_DROP_FIB, XDP_DROP);
}

/* TUN (ip_vs_tunnel_xmit): prepend an outer IPv4 header (IPIP) or IPv4 +
 * UDP + GUE (ipvs_gue_encap). Outer source = dest->tun_src, destination =
 * the RS; TOS = inner TOS with ECN encapsulated (INET_ECN_encapsulate),
 * DF = inner DF, TTL = inner TTL after the decrement, id 0 with DF (as
 * ip_select_ident) else random. The inner packet is not otherwise touched.
 * On a neighbour miss the encapsulated packet goes to the kernel, which
 * forwards it (its source is local: xvsd sets accept_local) and resolves
 * the neighbour. */
static __always_inline int tun_xmit(struct xdp_md *ctx, const struct xvs_dest *dest, __be16 sport,
				    int can_icmp)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data, e;
	struct bpf_fib_lookup fib = {};
	struct iphdr *ip, *oip;
	__be32 rs = dest->addr, src = dest->tun_src;
	__be16 dport = dest->tun_port;
	int gue = dest->tun_type == XVS_TUN_GUE;
	int csum_on = gue && (dest->tun_flags & XVS_TUN_F_CSUM);
	__u32 hlen = gue ? XVS_GUE_HLEN : XVS_IPIP_HLEN;
	__u32 inner_len;
	__be16 df;
	__u8 tos, ttl;
	long rc;

	if ((void *)(eth + 1) > data_end)
		return verdict(XVS_CNT_PASS_TRUNCATED, XDP_PASS);
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return verdict(XVS_CNT_PASS_TRUNCATED, XDP_PASS);
	inner_len = bpf_ntohs(ip->tot_len);
	df = ip->frag_off & bpf_htons(IP_DF);

	fib.family = AF_INET;
	fib.tos = ip->tos;
	fib.l4_protocol = gue ? IPPROTO_UDP : IPPROTO_IPIP;
	fib.sport = gue ? sport : 0;
	fib.dport = gue ? dport : 0;
	fib.tot_len = inner_len + hlen;
	fib.ifindex = ctx->ingress_ifindex;
	fib.ipv4_src = src;
	fib.ipv4_dst = rs;
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED && df) {
		/* As ensure_mtu_is_adequate: the sender learns the route MTU
		 * less the encapsulation overhead. */
		__u32 mtu = fib.mtu_result;

		if (can_icmp && mtu >= hlen + IP_MIN_MTU)
			return icmp_frag_needed(ctx, mtu - hlen);
		return verdict(XVS_CNT_DROP_TOO_BIG, XDP_DROP);
	}

	ip_decrease_ttl(ip);
	ttl = ip->ttl;
	tos = ip->tos;
	if ((tos & INET_ECN_MASK) == INET_ECN_MASK) /* CE is not copied out */
		tos = (tos & ~INET_ECN_MASK) | INET_ECN_ECT_0;
	__builtin_memcpy(&e, eth, sizeof(e));

	if (bpf_xdp_adjust_head(ctx, -(int)hlen))
		return verdict(XVS_CNT_DROP_ENCAP, XDP_DROP);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	oip = (void *)(eth + 1);
	if ((void *)oip + XVS_GUE_HLEN > data_end)
		return verdict(XVS_CNT_DROP_ENCAP, XDP_DROP);
	__builtin_memcpy(eth, &e, sizeof(e));

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
				return verdict(XVS_CNT_DROP_ENCAP, XDP_DROP);
			check = (__u16)~sum;
			data = (void *)(long)ctx->data;
			data_end = (void *)(long)ctx->data_end;
			uh = data + sizeof(*eth) + sizeof(*oip);
			if ((void *)(uh + 1) > data_end)
				return verdict(XVS_CNT_DROP_ENCAP, XDP_DROP);
			uh->check = check ? check : 0xffff;
		}
	}

	cnt(XVS_CNT_TUN_IN);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS)
		return fib_out(ctx, &fib);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return verdict(XVS_CNT_FIB_NO_NEIGH, XDP_PASS);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) /* no DF: the kernel fragments */
		return verdict(XVS_CNT_FIB_FRAG_NEEDED, XDP_PASS);
	return verdict(XVS_CNT_FIB_OTHER, XDP_PASS);
}

/* Sends a client packet of a DR/TUN connection on to its dest, by the
 * dest's current forwarding method. `fkey` is the connection's forward
 * tuple. ICMP errors never cause ICMP errors (can_icmp = 0). */
static __always_inline int fwd_dest(struct xdp_md *ctx, __u32 dest_id,
				    const struct xvs_conn_key *fkey, int can_icmp)
{
	struct xvs_dest *d = bpf_map_lookup_elem(&DEST_MAP, &dest_id);

	if (!d || !(d->flags & XVS_DEST_F_AVAILABLE) || d->fwd == XVS_FWD_MASQ)
		return verdict(XVS_CNT_PASS_STALE, XDP_PASS);
	if (d->fwd == XVS_FWD_ROUTE)
		return dr_xmit(ctx, d->addr, can_icmp);
	if (d->fwd != XVS_FWD_TUNNEL || d->tun_type > XVS_TUN_GUE)
		return verdict(XVS_CNT_PASS_FWD_UNSUPP, XDP_PASS);
	return tun_xmit(ctx, d, gue_sport(fkey), can_icmp);
}

/* ---- ICMP errors for NAT, DR and TUN connections ---- */

static __always_inline int handle_icmp(struct xdp_md *ctx, struct ethhdr *eth, struct iphdr *ip,
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
		return verdict(XVS_CNT_PASS_TRUNCATED, XDP_PASS);
	if (ic->type != ICMP_DEST_UNREACH && ic->type != ICMP_TIME_EXCEEDED &&
	    ic->type != ICMP_SOURCE_QUENCH && ic->type != ICMP_PARAMETERPROB)
		return verdict(XVS_CNT_PASS_ICMP, XDP_PASS);

	in = (void *)(ic + 1);
	if ((void *)(in + 1) > data_end)
		return verdict(XVS_CNT_PASS_TRUNCATED, XDP_PASS);
	inihl = in->ihl * 4;
	if (in->version != 4 || inihl < sizeof(*in))
		return verdict(XVS_CNT_PASS_ICMP, XDP_PASS);
	if (in->protocol != IPPROTO_TCP && in->protocol != IPPROTO_UDP)
		return verdict(XVS_CNT_PASS_ICMP, XDP_PASS);
	if (in->frag_off & bpf_htons(0x1fff))
		return verdict(XVS_CNT_PASS_ICMP, XDP_PASS);
	ports = (void *)in + inihl;
	if ((void *)(ports + 2) > data_end)
		return verdict(XVS_CNT_PASS_TRUNCATED, XDP_PASS);

	/* The embedded packet travelled the other way: look its reverse up. */
	key.saddr = in->daddr;
	key.daddr = in->saddr;
	key.sport = ports[1];
	key.dport = ports[0];
	key.proto = in->protocol;
	c = bpf_map_lookup_elem(&CONN_MAP, &key);
	if (!c)
		return verdict(XVS_CNT_PASS_ICMP, XDP_PASS);
	if (ip->ttl <= 1)
		return verdict(XVS_CNT_PASS_TTL, XDP_PASS);
	if (c->fwd != XVS_FWD_MASQ) {
		/* DR/TUN: as ip_vs_icmp_xmit, the error goes to the real
		 * server unchanged (it answered with the VIP as source). */
		if (c->flags & XVS_CONN_F_REPLY)
			return verdict(XVS_CNT_PASS_STALE, XDP_PASS);
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
	return xmit(ctx, eth, ip, 0, 0);
}

/* ---- scheduling and connection creation ---- */

static __always_inline struct xvs_conn *new_conn(struct xvs_conn_key *fkey, __u8 tcpflags,
						 __u64 now, int *verdict_out)
{
	struct xvs_svc_key skey = {};
	struct xvs_svc *svc;
	struct xvs_ring_key rkey;
	struct xvs_dest *dest;
	struct xvs_conn_key rk = {};
	struct xvs_conn fval = {}, rval = {};
	__u64 *pos;
	__u32 *dest_id, svc_id, ring_len;
	__u64 p;
	long err;

	skey.addr = fkey->daddr;
	skey.port = fkey->dport;
	skey.proto = fkey->proto;
	svc = bpf_map_lookup_elem(&SVC_MAP, &skey);
	if (!svc) {
		*verdict_out = verdict(XVS_CNT_PASS_NO_SVC, XDP_PASS);
		return NULL;
	}
	if (fkey->proto == IPPROTO_TCP && (!(tcpflags & TCPF_SYN) || (tcpflags & TCPF_RST))) {
		*verdict_out = verdict(XVS_CNT_PASS_TCP_NO_CONN, XDP_PASS);
		return NULL;
	}
	svc_id = svc->id;
	ring_len = svc->ring_len;
	pos = bpf_map_lookup_elem(&SCHED_POS, &svc_id);
	if (!pos || ring_len == 0) {
		*verdict_out = verdict(XVS_CNT_PASS_NO_DEST, XDP_PASS);
		return NULL;
	}
	p = __sync_fetch_and_add(pos, 1);
	rkey.svc_id = svc_id;
	rkey.slot = ((svc->gen & 1) << XVS_RING_GEN_SHIFT) | (__u32)(p % ring_len);
	dest_id = bpf_map_lookup_elem(&RING_MAP, &rkey);
	if (!dest_id) {
		*verdict_out = verdict(XVS_CNT_PASS_NO_DEST, XDP_PASS);
		return NULL;
	}
	fval.dest_id = *dest_id;
	dest = bpf_map_lookup_elem(&DEST_MAP, &fval.dest_id);
	if (!dest || !(dest->flags & XVS_DEST_F_AVAILABLE)) {
		*verdict_out = verdict(XVS_CNT_PASS_NO_DEST, XDP_PASS);
		return NULL;
	}
	if (dest->fwd > XVS_FWD_TUNNEL) {
		*verdict_out = verdict(XVS_CNT_PASS_FWD_UNSUPP, XDP_PASS);
		return NULL;
	}

	rk.saddr = dest->addr;
	rk.daddr = fkey->saddr;
	rk.sport = dest->port;
	rk.dport = fkey->sport;
	rk.proto = fkey->proto;

	fval.last_seen_ns = now;
	fval.peer = rk;
	fval.svc_id = svc_id;
	fval.state = fkey->proto == IPPROTO_TCP
			     ? tcp_next_state(dest->fwd == XVS_FWD_MASQ ? TCP_DIR_INPUT
									 : TCP_DIR_INPUT_ONLY,
					      tcpflags, XVS_S_NONE)
			     : XVS_S_UDP;
	fval.fwd = dest->fwd;
	rval = fval;
	rval.peer = *fkey;
	rval.flags = XVS_CONN_F_REPLY;

	err = bpf_map_update_elem(&CONN_MAP, fkey, &fval, BPF_NOEXIST);
	if (err == -EEXIST_) {
		/* Another CPU created it first: use theirs. */
		struct xvs_conn *c = bpf_map_lookup_elem(&CONN_MAP, fkey);

		if (!c)
			*verdict_out = verdict(XVS_CNT_PASS_STALE, XDP_PASS);
		return c;
	}
	if (err) {
		*verdict_out = verdict(XVS_CNT_DROP_CONN_FULL, XDP_DROP);
		return NULL;
	}
	/* DR/TUN: replies bypass the director, no reply entry. */
	err = fval.fwd == XVS_FWD_MASQ ? bpf_map_update_elem(&CONN_MAP, &rk, &rval, BPF_NOEXIST) : 0;
	if (err) {
		bpf_map_delete_elem(&CONN_MAP, fkey);
		if (err == -EEXIST_)
			*verdict_out = verdict(XVS_CNT_DROP_CONN_CLASH, XDP_DROP);
		else
			*verdict_out = verdict(XVS_CNT_DROP_CONN_FULL, XDP_DROP);
		return NULL;
	}
	cnt(XVS_CNT_CONN_NEW);
	dest_conns_add(fval.dest_id, fval.state, 1);
	stats_conn(svc_id, fval.dest_id);
	/* Return the stored entry; the state is already the post-SYN one. */
	return bpf_map_lookup_elem(&CONN_MAP, fkey);
}

/* ---- main ---- */

SEC("xdp")
int xvs_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct xvs_conn_key key = {};
	struct xvs_conn *c, *fc;
	__be16 *ports;
	__u16 *csum;
	void *l4;
	__u32 ihl, tot_len;
	__u8 tcpflags = 0;
	__u64 now;
	int is_udp, v = XDP_PASS;

	cnt(XVS_CNT_RX);
	if ((void *)(eth + 1) > data_end)
		return verdict(XVS_CNT_PASS_TRUNCATED, XDP_PASS);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return verdict(XVS_CNT_PASS_NOT_IP, XDP_PASS);
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return verdict(XVS_CNT_PASS_TRUNCATED, XDP_PASS);
	ihl = ip->ihl * 4;
	if (ip->version != 4 || ihl < sizeof(*ip))
		return verdict(XVS_CNT_PASS_BAD_IP, XDP_PASS);
	tot_len = bpf_ntohs(ip->tot_len);
	if (tot_len < ihl)
		return verdict(XVS_CNT_PASS_BAD_IP, XDP_PASS);
	if ((void *)ip + tot_len > data_end)
		return verdict(XVS_CNT_PASS_TRUNCATED, XDP_PASS);
	if (ip->frag_off & bpf_htons(IP_MF_OFFSET))
		return verdict(XVS_CNT_PASS_FRAGMENT, XDP_PASS);
	l4 = (void *)ip + ihl;

	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *th = l4;

		if ((void *)(th + 1) > data_end)
			return verdict(XVS_CNT_PASS_TRUNCATED, XDP_PASS);
		tcpflags = ((__u8 *)th)[13];
		csum = &th->check;
		is_udp = 0;
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *uh = l4;

		if ((void *)(uh + 1) > data_end)
			return verdict(XVS_CNT_PASS_TRUNCATED, XDP_PASS);
		csum = &uh->check;
		is_udp = 1;
	} else if (ip->protocol == IPPROTO_ICMP) {
		return handle_icmp(ctx, eth, ip, l4, data_end);
	} else {
		return verdict(XVS_CNT_PASS_PROTO, XDP_PASS);
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
			return verdict(XVS_CNT_PASS_TTL, XDP_PASS);
		fc = bpf_map_lookup_elem(&CONN_MAP, &c->peer);
		if (!fc)
			return verdict(XVS_CNT_PASS_STALE, XDP_PASS);
		now = bpf_ktime_get_ns();
		fc->last_seen_ns = now;
		if (!is_udp)
			tcp_transition(fc, TCP_DIR_OUTPUT, tcpflags);
		stats_add(c->svc_id, c->dest_id, 0, tot_len);
		nat_l4(ip, ports, csum, is_udp, 0, c->peer.daddr, c->peer.dport);
		cnt(XVS_CNT_NAT_OUT);
		return xmit(ctx, eth, ip, ports[0], ports[1]);
	}

	/* Client -> VIP. */
	if (!c) {
		/* Cheap pre-check so non-VIP traffic is not TTL-counted. */
		struct xvs_svc_key skey = {};

		skey.addr = key.daddr;
		skey.port = key.dport;
		skey.proto = key.proto;
		if (!bpf_map_lookup_elem(&SVC_MAP, &skey))
			return verdict(XVS_CNT_PASS_NO_SVC, XDP_PASS);
	}
	if (ip->ttl <= 1)
		return verdict(XVS_CNT_PASS_TTL, XDP_PASS);
	now = bpf_ktime_get_ns();
	if (!c) {
		/* new_conn applies the first event (NONE -> SYN_RECV). */
		c = new_conn(&key, tcpflags, now, &v);
		if (!c)
			return v;
	} else {
		c->last_seen_ns = now;
		if (!is_udp)
			tcp_transition(c, c->fwd == XVS_FWD_MASQ ? TCP_DIR_INPUT : TCP_DIR_INPUT_ONLY,
				       tcpflags);
	}
	stats_add(c->svc_id, c->dest_id, 1, tot_len);
	if (c->fwd != XVS_FWD_MASQ)
		return fwd_dest(ctx, c->dest_id, &key, 1);
	nat_l4(ip, ports, csum, is_udp, 1, c->peer.saddr, c->peer.sport);
	cnt(XVS_CNT_NAT_IN);
	return xmit(ctx, eth, ip, ports[0], ports[1]);
}

/* For testbeds: lets a veth peer receive XDP_REDIRECTed frames. */
SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
