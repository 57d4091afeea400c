/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Connection tracking in CONN_MAP (docs/design.md, "Data plane"): IPVS's
 * TCP and SCTP state machines (sctp.h has SCTP's), and the entries of a
 * connection. A NAT connection
 * has a forward entry (client tuple; holds the state) and a reply entry
 * (real server tuple; names the forward one in `peer`); DR and TUN ones
 * the forward entry only, since their replies bypass the director.
 * One-packet (-o) UDP flows get no forward entry (NAT: a reply entry
 * only).
 */
#ifndef XVS_LIB_CONNTRACK_H
#define XVS_LIB_CONNTRACK_H

#include "addr.h"
#include "atomics.h"
#include "counters.h"
#include "dest.h"
#include "parse.h"
#include "scratch.h"
#include "sctp.h"

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

static const __u8 tcp_states[12][XVS_S_TCP_LAST] = {
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

/* The client's direction for a connection forwarded by `fwd`. */
static __always_inline __u32 dir_in(__u8 fwd)
{
	return fwd == XVS_FWD_MASQ ? DIR_INPUT : DIR_INPUT_ONLY;
}

static __always_inline __u32 tcp_next_state(__u32 dir, __u8 flags, __u32 old)
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
	row += dir * 4;
	if (row >= 12 || old >= XVS_S_TCP_LAST)
		return XVS_S_CLOSE;
	return tcp_states[row][old];
}

/* The state after event `ev` (parse.h's pkt.ev) of a `proto` packet in
 * direction `dir`; UDP has one state. */
static __always_inline __u32 next_state(__u8 proto, __u32 dir, __u8 ev, __u32 old)
{
	if (proto == IPPROTO_TCP)
		return tcp_next_state(dir, ev, old);
	if (proto == IPPROTO_SCTP)
		return sctp_next_state(dir, ev, old);
	return XVS_S_UDP;
}

/* How often conn_transition retries a compare-and-swap another CPU won.
 * Each retry follows a committed transition of the same connection, and
 * a connection has few packets in flight at once. */
#define CONN_TRANSITION_TRIES 4

/* Apply one event to the forward entry of a `proto` connection, as IPVS
 * does under cp->lock: when another CPU changed the state first (the
 * client's and the server's FIN crossing), the event is applied again to
 * the state it left, never dropped (a dropped FIN leaves the connection
 * in FIN_WAIT for good). DEST_CONNS follows the transition that actually
 * got committed (compare-and-swap). */
static __always_inline void conn_transition(struct xvs_conn *fc, __u8 proto, __u32 dir, __u8 ev)
{
	__u32 old, new;
	int i;

	if (proto == IPPROTO_UDP)
		return;
#pragma unroll
	for (i = 0; i < CONN_TRANSITION_TRIES; i++) {
		old = *(volatile __u32 *)&fc->state;
		new = next_state(proto, dir, ev, old);
		if (new == old)
			return;
		if (xvs_cmpxchg32(&fc->state, old, new))
			break;
	}
	if (i == CONN_TRANSITION_TRIES) {
		cnt(XVS_CNT_STATE_RACE);
		return;
	}
	if (state_active(old) != state_active(new)) {
		dest_conns_add(fc->dest_id, old, -1);
		dest_conns_add(fc->dest_id, new, 1);
	}
}

/* Deletes the reply entry `rk` of the forward entry `fkey` (already
 * deleted), unless a newer connection took it over. */
static __always_inline void reply_delete(const struct xvs_conn_key *rk,
					 const struct xvs_conn_key *fkey)
{
	struct xvs_conn *r = bpf_map_lookup_elem(&CONN_MAP, rk);

	if (r && conn_key_eq(&r->peer, fkey))
		bpf_map_delete_elem(&CONN_MAP, rk);
}

/* Whether packet `p` opens a new connection over entry `c` in state
 * `st` (IPVS's is_new_conn + is_new_conn_expected): a TCP SYN on TIME_WAIT
 * or CLOSE, an SCTP INIT on CLOSED. */
static __always_inline int conn_reopens(const struct pkt *p, __u32 st)
{
	if (p->key.proto == IPPROTO_TCP)
		return (p->ev & TCPF_SYN) && !(p->ev & TCPF_RST) &&
		       (st == XVS_S_TIME_WAIT || st == XVS_S_CLOSE);
	if (p->key.proto == IPPROTO_SCTP)
		return p->ev == SCTP_CID_INIT && st == XVS_S_SCTP_CLOSED;
	return 0;
}

/* conn_reuse_mode done right: a new connection on a closed one's tuple
 * (conn_reopens) is scheduled afresh now (no "1 second SYN drop"): the
 * old one's entries go. Connections controlled by a persistence
 * template keep their entry, as in IPVS. Returns `c`, or NULL when it
 * went. */
static __always_inline struct xvs_conn *conn_reuse(const struct pkt *p, struct xvs_conn *c)
{
	struct xvs_conn old;
	__u32 st;

	if (!c || (c->flags & XVS_CONN_F_PERSIST))
		return c;
	st = *(volatile __u32 *)&c->state;
	if (!conn_reopens(p, st))
		return c;
	old = *c;
	if (bpf_map_delete_elem(&CONN_MAP, &p->key) == 0) {
		if (old.fwd == XVS_FWD_MASQ)
			reply_delete(&old.peer, &p->key);
		dest_unbind(old.dest_id, st);
	}
	cnt(XVS_CNT_CONN_REUSE);
	return NULL;
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

/* One-packet scheduling (-o): no connection. A NAT reply needs its
 * translation, so a reply-only entry (expired by xvsd after the udp
 * timeout) remembers VIP:vport for it. Returns GO_ON or a verdict. */
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
	return GO_ON;
}

/* Inserts the scratch's forward entry `fval` (and, for NAT, its reply
 * entry under `rk`). Returns GO_ON or a verdict. */
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
		return GO_ON;
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
	return GO_ON;
}

#endif /* XVS_LIB_CONNTRACK_H */
