// SPDX-License-Identifier: GPL-2.0-only
/*
 * xvs XDP data plane: IPVS-style NAT (masquerading) for TCP and UDP.
 * See docs/design.md. Shared structures live in xvs.h only.
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
	__uint(max_entries, XVS_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} XVS_CNT SEC(".maps");

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
	/* INPUT-ONLY (DR/TUN, later) */
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

/* ---- ICMP errors for NAT connections ---- */

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
	if (c->fwd != XVS_FWD_MASQ)
		return verdict(XVS_CNT_PASS_FWD_UNSUPP, XDP_PASS);
	if (ip->ttl <= 1)
		return verdict(XVS_CNT_PASS_TTL, XDP_PASS);

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
	if (dest->fwd != XVS_FWD_MASQ) {
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
	fval.state = fkey->proto == IPPROTO_TCP ? tcp_next_state(TCP_DIR_INPUT, tcpflags, XVS_S_NONE)
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
	err = bpf_map_update_elem(&CONN_MAP, &rk, &rval, BPF_NOEXIST);
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
	if (c && c->fwd != XVS_FWD_MASQ)
		return verdict(XVS_CNT_PASS_FWD_UNSUPP, XDP_PASS);
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
			tcp_transition(c, TCP_DIR_INPUT, tcpflags);
	}
	stats_add(c->svc_id, c->dest_id, 1, tot_len);
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
