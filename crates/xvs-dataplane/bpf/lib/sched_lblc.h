/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The locality schedulers: lblc (one dest per destination address) and
 * lblcr (a replica set per destination address), with their caches in
 * LBLC_MAP; a miss or an overloaded choice falls back to wlc's scan.
 */
#ifndef XVS_LIB_SCHED_LBLC_H
#define XVS_LIB_SCHED_LBLC_H

#include "sched_scan.h"

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

static __always_inline void setscan_take(struct setscan *s, __u32 best, __u32 w, __u64 oh)
{
	s->best = best;
	s->bw = w;
	s->boh = oh;
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
			if (v.weight)
				setscan_take(s, id, v.weight, oh);
		} else if (s->boh * v.weight > oh * s->bw) {
			setscan_take(s, id, v.weight, oh);
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
		if (w)
			setscan_take(s, i, w, oh);
	} else if (s->boh * w < oh * s->bw && w) {
		setscan_take(s, i, w, oh);
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

/* lblcr: drops member `m` of the set `e` of `n` members; returns n - 1. */
static __always_inline __u32 set_remove(struct xvs_lblc *e, int m, __u32 n, __u64 now)
{
	for (int i = 0; i < XVS_LBLCR_SET_MAX - 1; i++)
		if (i >= m && i + 1 < n)
			e->dests[i] = e->dests[i + 1];
	n--;
	e->n = n;
	e->lastmod_ns = now;
	return n;
}

/* lblcr: `id` joins the set `e` of `n` members, unless it is in it; the
 * oldest member goes when the set is full. */
static __always_inline void set_insert(struct xvs_lblc *e, __u32 id, __u32 n, __u64 now)
{
	int found = 0;

	for (int i = 0; i < XVS_LBLCR_SET_MAX; i++)
		if (i < n && e->dests[i] == id)
			found = 1;
	if (found)
		return;
	if (n >= XVS_LBLCR_SET_MAX)
		n = XVS_LBLCR_SET_MAX - 1;
	for (int i = XVS_LBLCR_SET_MAX - 1; i > 0; i--)
		if (i <= (int)n)
			e->dests[i] = e->dests[i - 1];
	e->dests[0] = id;
	e->n = n + 1;
	e->lastmod_ns = now;
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
	int m;

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
		if (m >= 0)
			n = set_remove(e, m, n, now);
	}
	if (least != XVS_NO_DEST && dest_get(least, svc_id, &v) && !loc_overloaded(&v))
		return least;
	id = (__u32)scan_pick(XVS_SCHED_WLC);
	if (id == XVS_NO_DEST)
		return id;
	e = bpf_map_lookup_elem(&LBLC_MAP, &sc->lk);
	if (!e)
		return id;
	set_insert(e, id, n, now);
	return id;
}

#endif /* XVS_LIB_SCHED_LBLC_H */
