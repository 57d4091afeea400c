/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The schedulers that scan the service's dest list in kernel list order:
 * the least-connection family (lc, wlc, sed, nq, fo, ovf), twos, and
 * lblc/lblcr's "is some dest underloaded" test. One pass is a bounded
 * loop over scan_step, a global function verified once (scratch.h).
 */
#ifndef XVS_LIB_SCHED_SCAN_H
#define XVS_LIB_SCHED_SCAN_H

#include "dest.h"
#include "scratch.h"

/* Scan modes beyond enum xvs_sched. */
#define SCAN_TWOS_TOTAL 100
#define SCAN_LOC_UNDER 101

static __always_inline void scan_set(struct scan *s, __u32 id, __u32 w, __u64 oh)
{
	s->best = id;
	s->best_w = w;
	s->best_oh = oh;
}

/* twos: the two weighted random candidates, r1 and r2 counted down. */
static __always_inline int twos_step(struct scan *s, __u32 id, const struct dview *v)
{
	if (!v->weight || v->overloaded)
		return STEP_NEXT;
	s->r1 -= v->weight;
	s->r2 -= v->weight;
	if (s->r1 <= 0 && s->c1 == XVS_NO_DEST) {
		s->c1 = id;
		s->c1_w = v->weight;
		s->c1_oh = overhead(v);
	}
	if (s->r2 <= 0 && s->c2 == XVS_NO_DEST) {
		s->c2 = id;
		s->c2_w = v->weight;
		s->c2_oh = overhead(v);
	}
	return s->c1 != XVS_NO_DEST && s->c2 != XVS_NO_DEST;
}

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
		return twos_step(s, id, &v);
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

#endif /* XVS_LIB_SCHED_SCAN_H */
