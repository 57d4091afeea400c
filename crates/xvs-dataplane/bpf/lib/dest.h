/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Dests: what a scheduler sees of one (weight, connection counts,
 * OVERLOAD), and their runtime counts in DEST_CONNS, kept as IPVS keeps
 * them (ip_vs_bind_dest / ip_vs_unbind_dest, with the -x/-y thresholds).
 */
#ifndef XVS_LIB_DEST_H
#define XVS_LIB_DEST_H

#include "atomics.h"
#include "maps.h"

/* A dest slot that holds a configured dest (not deleted: in IPVS's
 * trash, its connections stay but get no packets). */
static __always_inline int dest_available(const struct xvs_dest *d)
{
	return d && (d->flags & XVS_DEST_F_AVAILABLE);
}

/* Whether dest `dest_id` is one of the director's own addresses, as
 * user space found its route (RTN_LOCAL): its packets are for the
 * director's own stack, as IPVS's transmitters hand them on when their
 * output route is local. */
static __always_inline int dest_local(__u32 dest_id)
{
	struct xvs_dest_nh *nh = bpf_map_lookup_elem(&DEST_NH, &dest_id);

	return nh && nh->state == XVS_NH_LOCAL;
}

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

/* ip_vs_dest_conn_overhead */
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

/* IPVS counts a connection as active in ESTABLISHED, TCP's or SCTP's. */
static __always_inline int state_active(__u32 state)
{
	return state == XVS_S_ESTABLISHED || state == XVS_S_SCTP_ESTABLISHED;
}

static __always_inline void dest_conns_add(__u32 dest_id, __u32 state, int delta)
{
	struct xvs_dest_conns *dc = bpf_map_lookup_elem(&DEST_CONNS, &dest_id);

	if (!dc)
		return;
	if (state_active(state))
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
	if (state_active(state))
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
	if (state_active(state))
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

/* One persistence template more (1) or fewer (-1) on the dest. */
static __always_inline void persist_add(__u32 dest_id, int delta)
{
	struct xvs_dest_conns *dc = bpf_map_lookup_elem(&DEST_CONNS, &dest_id);

	if (dc)
		__sync_fetch_and_add(&dc->persist, delta);
}

#endif /* XVS_LIB_DEST_H */
