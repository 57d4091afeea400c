// SPDX-License-Identifier: GPL-2.0-only
/*
 * xvs director: IPVS-style NAT (masquerading), direct routing and
 * IPIP/GUE tunnelling for TCP, UDP and SCTP, both directions, one program per
 * interface. This file is the entry and the order of its stages; each
 * stage lives in a header of lib/ (docs/design.md, "Data plane", has the
 * table). Shared structures live in xvs.h only. Built as `xvs_xdp` and,
 * with -DXVS_TC, as `xvs_tc` (lib/ctx.h).
 */
#include "lib/ctx.h"

#include "xvs.h"
#include "lib/maps.h"
#include "lib/counters.h"
#include "lib/clock.h"
#include "lib/parse.h"
#include "lib/service.h"
#include "lib/conntrack.h"
#include "lib/persist.h"
#include "lib/conn_new.h"
#include "lib/nat.h"
#include "lib/reply.h"
#include "lib/nexthop.h"
#include "lib/fwd.h"
#include "lib/icmp_err.h"

char LICENSE[] SEC("license") = "GPL";

/* tc: what must be linear for direct access: Ethernet, IPv4 with
 * options, 8 bytes of L4 and, for ICMP errors, the quoted IPv4 header
 * + 8. */
#define XVS_PULL_LEN 160

/* What forwarding needs of a connection, copied out of its entry: not
 * the whole entry, whose two 16-byte addresses the main program's stack
 * (at the deepest call chain's limit) has no room for. */
struct conn_view {
	__u32 svc_id;
	__u32 dest_id;
	union xvs_addr daddr; /* NAT: the dest (peer.saddr) */
	__be16 dport;         /* NAT: the dest's port (peer.sport) */
	__u8 fwd;
};

static __always_inline void conn_view(struct conn_view *cv, const struct xvs_conn *c)
{
	cv->svc_id = c->svc_id;
	cv->dest_id = c->dest_id;
	cv->fwd = c->fwd;
	cv->daddr = c->peer.saddr;
	cv->dport = c->peer.sport;
}

/* Real server -> client on the reply entry `c` of a NAT connection
 * (lib/reply.h), sent on to the client. */
static __always_inline int nat_reply(xvs_ctx *ctx, const struct pkt *p, struct xvs_conn *c)
{
	int v;

	if (p->ip->ttl <= 1)
		return verdict(XVS_CNT_PASS_TTL, ACT_PASS);
	v = reply_rewrite(ctx, p, c);
	if (v != GO_ON)
		return v;
	cnt(XVS_CNT_NAT_OUT);
	return xmit(ctx, c->peer.dport, p->key.dport);
}

/* Client -> VIP on the forward entry `c`: refreshed and its TCP or SCTP
 * state advanced; `cv` gets what forwarding needs. */
static __always_inline int conn_update(const struct pkt *p, struct xvs_conn *c, __u64 now,
				       struct conn_view *cv)
{
	struct xvs_dest *d = bpf_map_lookup_elem(&DEST_MAP, &c->dest_id);

	/* A deleted dest's connections stay (IPVS's dest trash); their
	 * packets are dropped, the connection not refreshed (IPVS with
	 * expire_nodest_conn 0, its default). */
	if (!dest_available(d))
		return verdict(XVS_CNT_DROP_DEST_GONE, ACT_DROP);
	if (c->last_seen_ns != now)
		c->last_seen_ns = now;
	conn_transition(c, p->key.proto, dir_in(c->fwd), p->ev);
	/* UDP's one state is never active: a UDP template is assured by a
	 * reply (reply.h). */
	if (state_active(c->state))
		assure_once(c, &p->key);
	conn_view(cv, c);
	return GO_ON;
}

/* Client -> VIP without a connection: a new one (conn_new.h); `cv` gets
 * what forwarding needs. */
static __always_inline int conn_create(xvs_ctx *ctx, const struct pkt *p, __u64 now,
				       struct conn_view *cv)
{
	struct xvs_scratch *sc = scratch();
	__u32 hl;
	int v;

	if (!sc)
		return verdict(XVS_CNT_PASS_STALE, ACT_PASS);
	sc->fkey = p->key;
	sc->sip.ready = 0;
	v = xvs_new_conn(p->ev, now);
	if (v == XVS_NEED_CALLID) {
		/* A --pe sip service: the UDP payload's Call-ID, then again. */
		hl = p->ip->ihl * 4 + sizeof(struct udphdr);
		sip_scan(ctx, p->l4off + sizeof(struct udphdr), p->tot_len > hl ? p->tot_len - hl : 0);
		v = xvs_new_conn(p->ev, now);
	}
	if (v != GO_ON)
		return v;
	conn_view(cv, &sc->out);
	return GO_ON;
}

/* parse -> connection (reply / existing / new: service, schedule) ->
 * NAT rewrite or DR/TUN -> next hop. */
CTX_PROG(xvs_xdp, xvs_tc)(xvs_ctx *ctx)
{
	struct conn_view cv = {};
	struct xvs_conn *c;
	struct pkt p;
	__u32 why;
	__u64 now;
	int v;

	cnt(XVS_CNT_RX);
	ctx_pull_headers(ctx, XVS_PULL_LEN);
	why = parse_ip(ctx, &p);
	if (why)
		return verdict(why, ACT_PASS);
	if (p.ip->protocol == IPPROTO_ICMP)
		return handle_icmp(ctx, p.ip, p.l4);
	why = parse_ports(ctx, &p);
	if (why)
		return verdict(why, ACT_PASS);

	c = bpf_map_lookup_elem(&CONN_MAP, &p.key);
	if (c && (c->flags & XVS_CONN_F_REPLY))
		return nat_reply(ctx, &p, c);

	/* Client -> VIP. */
	c = conn_reuse(&p, c);
	/* Cheap pre-check so non-VIP traffic is not TTL-counted. */
	if (!c && !svc_exists(&p.key))
		return verdict(XVS_CNT_PASS_NO_SVC, ACT_PASS);
	if (p.ip->ttl <= 1)
		return verdict(XVS_CNT_PASS_TTL, ACT_PASS);
	now = xvs_now();
	v = c ? conn_update(&p, c, now, &cv) : conn_create(ctx, &p, now, &cv);
	if (v != GO_ON)
		return v;

	stats_add(cv.svc_id, cv.dest_id, 1, p.tot_len);
	if (cv.fwd != XVS_FWD_MASQ)
		return fwd_dest(ctx, cv.dest_id, &p.key, 1);
	/* ip_vs_nat_xmit: from the world, never to a loopback address. */
	if (ip_is_loopback(cv.daddr.v4) && dest_local(cv.dest_id))
		return verdict(XVS_CNT_DROP_LOOPBACK, ACT_DROP);
	if (nat_rewrite(ctx, p.l4off, NAT_DST | nat_proto(p.key.proto), cv.daddr.v4,
			cv.dport))
		return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
	cnt(XVS_CNT_NAT_IN);
	/* A local dest's stack delivers it; its answers leave through the
	 * egress program (local_out.bpf.c), which rewrites them back. Looked
	 * up after the rewrite rather than kept across it: on Debian 12's
	 * 6.1 the tc build, where nat_rewrite is a call, took xmit for a
	 * local dest with the flag kept (fixture on the kernel matrix). */
	if (dest_local(cv.dest_id))
		return verdict(XVS_CNT_PASS_LOCAL, ACT_PASS);
	return xmit(ctx, p.key.sport, cv.dport);
}

CTX_XDP_PASS_PROG()
