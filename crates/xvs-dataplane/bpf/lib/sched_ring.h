/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Walks over a service's table in RING_MAP (user space builds it): rr and
 * wrr take the ring from the shared schedule position on; sh-fallback and
 * mh-fallback probe the bucket table (sched_hash.h) from the client's
 * bucket on. Walks are as long as a ring or an mh table, so they run as
 * bounded loops of chunks of global steps (scratch.h).
 */
#ifndef XVS_LIB_SCHED_RING_H
#define XVS_LIB_SCHED_RING_H

#include "atomics.h"
#include "dest.h"
#include "hash.h"
#include "scratch.h"

#define WALK_RING 0
#define WALK_SH 1
#define WALK_MH 2

/* Slot `idx` of generation `gen` of the service's table. */
static __always_inline __u32 ring_get(__u32 svc_id, __u32 gen, __u32 idx)
{
	struct xvs_ring_key rk = {
		.svc_id = svc_id,
		.slot = ((gen & 1) << XVS_RING_GEN_SHIFT) | idx,
	};
	__u32 *id = bpf_map_lookup_elem(&RING_MAP, &rk);

	return id ? *id : XVS_NO_DEST;
}

/* Step `k` of the scratch's walk: the ring slot k after the schedule
 * position (rr/wrr: empty slots are skipped), or probe offset k
 * (ip_vs_{sh,mh}_get_fallback: an empty slot ends the probe). Stops at
 * the first schedulable dest (weight > 0, not OVERLOAD). */
__noinline int walk_step(__u32 k)
{
	struct xvs_scratch *sc = scratch();
	struct walk *w;
	__u32 slot, id, roffset;

	if (!sc)
		return STEP_STOP;
	w = &sc->walk;
	if (!w->len || k >= w->len)
		return STEP_STOP;
	if (w->probe == WALK_RING) {
		slot = (__u32)((w->p + k) % w->len);
		id = ring_get(w->svc_id, w->gen, slot);
		if (id == XVS_NO_DEST)
			return STEP_NEXT;
	} else {
		roffset = (k + w->ihash) % w->len;
		if (w->probe == WALK_MH)
			slot = mh_hashkey(w->saddr, w->port, roffset) % w->len;
		else
			slot = sh_hashkey(w->saddr, w->port, roffset);
		id = ring_get(w->svc_id, w->gen, slot);
		if (id == XVS_NO_DEST)
			return STEP_STOP;
	}
	if (schedulable(id, XVS_NO_DEST)) {
		w->found = id;
		w->skipped = k;
		return STEP_STOP;
	}
	return STEP_NEXT;
}

/* Run in chunks, so no one loop pushes more branch states than the
 * verifier allows (8192). */
#define WALK_CHUNK 2048
#define WALK_CHUNKS 64
_Static_assert(WALK_CHUNK * WALK_CHUNKS > XVS_MH_TAB_MAX, "walks must cover every table");

__noinline int walk_chunk(__u32 start)
{
#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < WALK_CHUNK; i++)
		if (walk_step(start + i))
			return STEP_STOP;
	return STEP_NEXT;
}

static __always_inline void walk_run(void)
{
#pragma clang loop unroll(disable)
	for (__u32 c = 0; c < WALK_CHUNKS; c++)
		if (walk_chunk(c * WALK_CHUNK))
			break;
}

/* rr/wrr: the ring from the shared position on, skipping dests that are
 * OVERLOAD (or weight 0), at most one full ring. */
__noinline int ring_pick(void)
{
	struct xvs_scratch *sc = scratch();
	struct walk *w;
	__u64 *pos;
	__u32 k;

	if (!sc)
		return XVS_NO_DEST;
	w = &sc->walk;
	__builtin_memset(w, 0, sizeof(*w));
	k = sc->in.svc_id;
	w->svc_id = k;
	w->gen = sc->in.gen;
	w->len = sc->in.ring_len;
	w->found = XVS_NO_DEST;
	w->probe = WALK_RING;
	pos = bpf_map_lookup_elem(&SCHED_POS, &k);
	if (!pos || !w->len)
		return XVS_NO_DEST;
	/* Two CPUs may read one position without atomics (kernels before
	 * 5.12): both then pick the same slot, as a race in rr may. */
	w->p = xvs_fetch_add64(pos, 1);
	walk_run();
	/* Like the kernel's cursor, the next pick starts after this one; no
	 * pick leaves the cursor where it was. */
	if (w->found == XVS_NO_DEST)
		__sync_fetch_and_add(pos, (__u64)-1);
	else if (w->skipped)
		__sync_fetch_and_add(pos, w->skipped);
	return w->found;
}

#endif /* XVS_LIB_SCHED_RING_H */
