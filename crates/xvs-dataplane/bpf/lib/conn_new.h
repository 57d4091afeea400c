/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A new connection: service -> persistence template or scheduler -> dest
 * -> connection entries. The packet's tuple comes in the scratch's `fkey`
 * and the forward entry goes out in its `out`; the verdict, when the
 * packet cannot be forwarded, is the return value.
 */
#ifndef XVS_LIB_CONN_NEW_H
#define XVS_LIB_CONN_NEW_H

#include "conntrack.h"
#include "persist.h"
#include "sched.h"
#include "service.h"
#include "sip.h"

/* xvs_new_conn's answer when the packet's Call-ID is needed first. */
#define XVS_NEED_CALLID (-2)

/* The dest for the new flow of the scratch's `fkey`, through the client's
 * persistence template first when the service is `persistent`: its id,
 * or minus the reason (an XVS_CNT_* counter) the packet is refused for. */
static __always_inline int conn_pick_dest(int persistent, int sip)
{
	__u32 dest_id = XVS_NO_DEST;

	if (persistent)
		dest_id = sip ? (__u32)sip_pick() : (__u32)persist_pick();
	if (dest_id != XVS_NO_DEST)
		return dest_id;
	dest_id = (__u32)xvs_schedule();
	if (dest_id == XVS_NO_DEST)
		return -XVS_CNT_PASS_NO_DEST;
	if (!persistent)
		return dest_id;
	return sip ? sip_create(dest_id) : persist_create(dest_id);
}

/* The scratch's forward entry `fval` (dest id already set) and reply
 * tuple `rk` for the new flow `fkey` to `dest`. */
static __always_inline void conn_fill(struct xvs_scratch *sc, const struct xvs_dest *dest,
				      __be16 svc_port, __u8 ev, __u64 now, int persistent)
{
	const struct xvs_conn_key *fkey = &sc->fkey;
	struct xvs_conn *fval = &sc->fval;
	__be16 rport;

	/* The dest's port for the service port; a port-0 service (or a dest
	 * without port) keeps the port the client asked for. A fwmark
	 * service's connection takes the dest's port unless persistent
	 * (ip_vs_schedule against ip_vs_sched_persist). */
	if (sc->in.fwmark)
		rport = (!persistent && dest->port) ? dest->port : fkey->dport;
	else
		rport = (fkey->dport == svc_port && dest->port) ? dest->port : fkey->dport;

	__builtin_memset(&sc->rk, 0, sizeof(sc->rk));
	sc->rk.saddr = dest->addr;
	sc->rk.daddr = fkey->saddr;
	sc->rk.sport = rport;
	sc->rk.dport = fkey->sport;
	sc->rk.proto = fkey->proto;
	/* The reply tuple is the dest's family; until IPv6 forwarding both
	 * are the client's (a mixed-family TUN dest's peer is never
	 * inserted). */
	sc->rk.af = fkey->af;

	fval->last_seen_ns = now;
	fval->peer = sc->rk;
	fval->svc_id = sc->in.svc_id;
	fval->state = next_state(fkey->proto, dir_in(dest->fwd), ev,
				 fkey->proto == IPPROTO_SCTP ? XVS_S_SCTP_NONE : XVS_S_NONE);
	fval->fwd = dest->fwd;
	if (persistent)
		fval->flags |= XVS_CONN_F_PERSIST;
}

/* Whether a packet with event `ev` may open a `proto` connection: a TCP
 * SYN (not RST); for SCTP an INIT as the first chunk (sctp_conn_schedule,
 * sloppy_sctp off); any UDP datagram. Else the counter to pass it with. */
static __always_inline __u32 conn_opener(__u8 proto, __u8 ev)
{
	if (proto == IPPROTO_TCP && (!(ev & TCPF_SYN) || (ev & TCPF_RST)))
		return XVS_CNT_PASS_TCP_NO_CONN;
	if (proto == IPPROTO_SCTP && ev != SCTP_CID_INIT)
		return XVS_CNT_PASS_SCTP_NO_INIT;
	return 0;
}

/* Schedules the new flow of the scratch's `fkey` and creates its
 * connection entries (the first event applied: TCP NONE -> SYN_RECV,
 * SCTP NONE -> INIT1); the scratch's `out` gets a copy of the forward
 * entry. Returns GO_ON, the verdict when the packet cannot be forwarded,
 * or XVS_NEED_CALLID (the scratch's sip.ready is still 0). */
__noinline int xvs_new_conn(__u32 ev, __u64 now)
{
	struct xvs_scratch *sc = scratch();
	struct xvs_svc *svc;
	struct xvs_dest *dest;
	__be16 svc_port;
	__u32 svc_flags, why;
	int persistent, sip, r;

	if (!sc)
		return ACT_PASS;
	svc = svc_lookup(&sc->fkey, &svc_port);
	if (!svc)
		return verdict(XVS_CNT_PASS_NO_SVC, ACT_PASS);
	why = conn_opener(sc->fkey.proto, ev);
	if (why)
		return verdict(why, ACT_PASS);
	svc_flags = svc->flags;
	sched_in_fill(&sc->in, svc, &sc->fkey, svc_port, now);
	persistent = svc_flags & XVS_SVC_F_PERSISTENT;
	/* --pe sip (ip_vs_sched_persist with ip_vs_sip_fill_param): the
	 * Call-ID is part of the template key; without one, or on another
	 * protocol than UDP, the packet is dropped. The caller finds it
	 * (sip.h needs the packet) and calls again. */
	sip = persistent && (svc_flags & XVS_SVC_F_PE_SIP);
	if (sip && sc->fkey.proto != IPPROTO_UDP)
		return verdict(XVS_CNT_DROP_SIP, ACT_DROP);
	if (sip && !sc->sip.ready)
		return XVS_NEED_CALLID;
	if (sip && sc->sip.ready != SIP_FOUND)
		return verdict(XVS_CNT_DROP_SIP, ACT_DROP);

	r = conn_pick_dest(persistent, sip);
	if (r < 0)
		return refuse(-r);
	__builtin_memset(&sc->fval, 0, sizeof(sc->fval));
	sc->fval.dest_id = r;
	dest = bpf_map_lookup_elem(&DEST_MAP, &sc->fval.dest_id);
	if (!dest_available(dest))
		return verdict(XVS_CNT_PASS_NO_DEST, ACT_PASS);
	if (dest->fwd > XVS_FWD_TUNNEL)
		return verdict(XVS_CNT_PASS_FWD_UNSUPP, ACT_PASS);
	conn_fill(sc, dest, svc_port, ev, now, persistent);

	if (sc->fkey.proto == IPPROTO_UDP && (svc_flags & XVS_SVC_F_ONEPACKET))
		return new_ops(sc, now);
	return new_entries(sc);
}

#endif /* XVS_LIB_CONN_NEW_H */
