// SPDX-License-Identifier: GPL-2.0-only
/*
 * xvs_local_out: the answers of a local NAT dest. A real server that is
 * one of the director's own addresses gets its connections' packets
 * through the director's stack (xvs.bpf.c passes them, rewritten to
 * RS:rport); its answers leave the stack from RS:rport, never through
 * the director's ingress. This program, on the clsact egress hook of the
 * director's interfaces, gives them back the VIP:vport source, as IPVS's
 * LOCAL_OUT hook (ip_vs_local_reply4) does, and translates the ICMP
 * errors the stack sends about those connections. Every other packet
 * leaves untouched. It shares the director's maps (the loader reuses them) and
 * is built for tc only (lib/ctx.h with XVS_TC).
 */
#include "lib/ctx.h"

#include "xvs.h"
#include "lib/maps.h"
#include "lib/counters.h"
#include "lib/parse.h"
#include "lib/dest.h"
#include "lib/icmp_quote.h"
#include "lib/reply.h"

char LICENSE[] SEC("license") = "GPL";

/* Ethernet, IPv4 with options, and ports or an ICMP error's quoted
 * IPv4 header (with options) and ports. */
#define LOCAL_OUT_PULL_LEN 160

/* An ICMP error of the local stack about a packet of a local NAT dest's
 * connection: shown from VIP:vport, as the director shows its real
 * servers' (icmp_quote.h). */
static __always_inline int local_icmp(struct __sk_buff *ctx, struct iphdr *ip, void *l4)
{
	struct xvs_conn_key key;
	struct icmp_view v = { .key = &key };

	if (icmp_find(ctx, ip, l4, &v) || !(v.c->flags & XVS_CONN_F_REPLY) ||
	    v.c->fwd != XVS_FWD_MASQ || !dest_local(v.c->dest_id))
		return TC_ACT_OK;
	icmp_nat(ip, v.ic, v.in, v.ports, v.c);
	return verdict(XVS_CNT_LOCAL_OUT, TC_ACT_OK);
}

SEC("tc")
int xvs_local_out(struct __sk_buff *ctx)
{
	struct xvs_conn *c;
	struct pkt p;
	int v;

	ctx_pull_headers(ctx, LOCAL_OUT_PULL_LEN);
	if (parse_ip(ctx, &p))
		return TC_ACT_OK;
	if (p.ip->protocol == IPPROTO_ICMP)
		return local_icmp(ctx, p.ip, p.l4);
	if (parse_ports(ctx, &p))
		return TC_ACT_OK;
	c = bpf_map_lookup_elem(&CONN_MAP, &p.key);
	if (!c || !(c->flags & XVS_CONN_F_REPLY) || !dest_local(c->dest_id))
		return TC_ACT_OK;
	v = reply_rewrite(ctx, &p, c);
	if (v != GO_ON)
		return v;
	return verdict(XVS_CNT_LOCAL_OUT, TC_ACT_OK);
}
