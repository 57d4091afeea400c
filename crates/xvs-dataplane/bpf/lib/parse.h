/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Parsing: Ethernet -> IPv4 (IHL honoured) -> TCP/UDP/SCTP ports, with bounds
 * checks. Each step answers 0 or the reason the packet is not one to
 * handle (an XVS_CNT_PASS_* counter: not IPv4, broken, a fragment,
 * another protocol), which the caller passes to the kernel. The director
 * sends ICMP to icmp_err.h before the ports are read; decap.bpf.c uses
 * the IPv4 part.
 */
#ifndef XVS_LIB_PARSE_H
#define XVS_LIB_PARSE_H

#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include "ctx.h"
#include "addr.h"
#include "sctp.h"
#include "xvs.h"

#define IP_MF_OFFSET 0x3fff /* MF flag | fragment offset */
#define IP_DF 0x4000
#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_ACK 0x10

/* The IPv4 header of the frame [data, data_end): 0 and *ipp set, or the
 * reason it is not one to look at (an XVS_CNT_PASS_* counter). The
 * header's length is checked, not the packet's. */
static __always_inline __u32 parse_ipv4(void *data, void *data_end, struct iphdr **ipp)
{
	struct ethhdr *eth = data;
	struct iphdr *ip;

	if ((void *)(eth + 1) > data_end)
		return XVS_CNT_PASS_TRUNCATED;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XVS_CNT_PASS_NOT_IP;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return XVS_CNT_PASS_TRUNCATED;
	if (ip->version != 4 || ip->ihl * 4 < sizeof(*ip))
		return XVS_CNT_PASS_BAD_IP;
	*ipp = ip;
	return 0;
}

static __always_inline int ip_is_fragment(const struct iphdr *ip)
{
	return ip->frag_off & bpf_htons(IP_MF_OFFSET);
}

/* 127.0.0.0/8 (ipv4_is_loopback). */
static __always_inline int ip_is_loopback(__be32 a)
{
	return (bpf_ntohl(a) >> 24) == 127;
}

/* A TCP, UDP or SCTP packet of the frame, as the stages after parsing
 * see it. */
struct pkt {
	struct iphdr *ip;
	void *l4;
	__be16 *ports;            /* source, destination */
	struct xvs_conn_key key;  /* the packet's own 5-tuple */
	__u32 tot_len;            /* IP total length */
	__u32 l4off;              /* the L4 header's offset in the frame */
	__u8 ev;                  /* TCP: the flags; SCTP: the first chunk's type */
};

/* The first chunk's type as IPVS reads it (set_sctp_state): an ABORT
 * bundled right after a COOKIE ECHO or COOKIE ACK counts instead. The
 * chunk after may lie beyond what tc pulled: loaded, not read direct. */
static __always_inline __u8 sctp_first_chunk(xvs_ctx *ctx, __u32 chunk_off, __u32 l4len)
{
	__u8 ch[SCTP_CHUNK_HDR], next_type;
	__u32 clen, next;

	if (l4len < SCTP_HDR_LEN + SCTP_CHUNK_HDR ||
	    ctx_load_bytes(ctx, chunk_off, ch, sizeof(ch)))
		return SCTP_CID_NONE;
	if (ch[0] != SCTP_CID_COOKIE_ECHO && ch[0] != SCTP_CID_COOKIE_ACK)
		return ch[0];
	clen = (__u32)ch[2] << 8 | ch[3];
	if (clen < SCTP_CHUNK_HDR)
		return ch[0];
	/* The next chunk's type, as an offset in the SCTP packet. */
	next = SCTP_HDR_LEN + ((clen + 3) & ~3u);
	if (next + 1 > l4len ||
	    ctx_load_bytes(ctx, chunk_off - SCTP_HDR_LEN + next, &next_type, sizeof(next_type)))
		return ch[0];
	return next_type == SCTP_CID_ABORT ? SCTP_CID_ABORT : ch[0];
}

/* The IPv4 header of `ctx`'s frame, whole packet present, not a
 * fragment: 0 with p->ip, l4, l4off and tot_len set, or the reason. */
static __always_inline __u32 parse_ip(xvs_ctx *ctx, struct pkt *p)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct iphdr *ip = NULL;
	__u32 why, ihl, tot_len;

	why = parse_ipv4(data, data_end, &ip);
	if (why)
		return why;
	ihl = ip->ihl * 4;
	tot_len = bpf_ntohs(ip->tot_len);
	if (tot_len < ihl)
		return XVS_CNT_PASS_BAD_IP;
	/* tc: the payload may sit in pages, so the skb's length counts */
	if (sizeof(struct ethhdr) + tot_len > ctx_len(ctx))
		return XVS_CNT_PASS_TRUNCATED;
	if (ip_is_fragment(ip))
		return XVS_CNT_PASS_FRAGMENT;
	p->ip = ip;
	p->l4 = (void *)ip + ihl;
	p->l4off = sizeof(struct ethhdr) + ihl;
	p->tot_len = tot_len;
	return 0;
}

/* The TCP, UDP or SCTP header after p->ip: 0 with the ports, the event
 * and the 5-tuple set, or the reason. */
static __always_inline __u32 parse_ports(xvs_ctx *ctx, struct pkt *p)
{
	void *data_end = ctx_data_end(ctx);
	struct iphdr *ip = p->ip;
	/* Bytes the IP packet itself carries after its header: a frame may
	 * be longer (Ethernet padding, garbage), and what follows the total
	 * length is not the packet's (the kernel trims it before IPVS
	 * looks). parse_ip checked tot_len >= ihl. */
	__u32 l4len = p->tot_len - (p->l4off - sizeof(struct ethhdr));

	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *th = p->l4;

		if ((void *)(th + 1) > data_end || l4len < sizeof(*th))
			return XVS_CNT_PASS_TRUNCATED;
		p->ev = ((__u8 *)th)[13];
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *uh = p->l4;

		if ((void *)(uh + 1) > data_end || l4len < sizeof(*uh))
			return XVS_CNT_PASS_TRUNCATED;
		p->ev = 0;
	} else if (ip->protocol == IPPROTO_SCTP) {
		if (p->l4 + SCTP_HDR_LEN > data_end || l4len < SCTP_HDR_LEN)
			return XVS_CNT_PASS_TRUNCATED;
		p->ev = sctp_first_chunk(ctx, p->l4off + SCTP_HDR_LEN, l4len);
	} else {
		return XVS_CNT_PASS_PROTO;
	}
	p->ports = p->l4;
	__builtin_memset(&p->key, 0, sizeof(p->key));
	addr_set4(&p->key.saddr, ip->saddr);
	addr_set4(&p->key.daddr, ip->daddr);
	p->key.af = XVS_AF_INET;
	p->key.sport = p->ports[0];
	p->key.dport = p->ports[1];
	p->key.proto = ip->protocol;
	return 0;
}

#endif /* XVS_LIB_PARSE_H */
