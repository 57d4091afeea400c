/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Per-CPU scratch space (XVS_SCRATCH) shared by the global functions of
 * scheduling, persistence and connection creation. They take scalars
 * only, because 5.10's verifier accepts no pointer arguments to a global
 * function but the context, and a map value is a valid map key on every
 * kernel (a pointer argument is not, before 6.2). One program runs on a
 * CPU at a time, and each member has one user at a time.
 *
 * The layout is the map's value size: change it only with the map.
 */
#ifndef XVS_LIB_SCRATCH_H
#define XVS_LIB_SCRATCH_H

#include "addr.h"
#include "maps.h"

/* The scheduling context of one new connection (service.h fills it). */
struct sched_in {
	__u32 svc_id;
	__u32 gen;
	__u32 sched;
	__u32 flags;
	__u32 ring_len;
	__u32 saddr; /* host order */
	__u32 daddr; /* host order */
	__u32 sport; /* host order */
	union xvs_addr daddr_be;
	union xvs_addr netmask; /* persistence */
	__u32 timeout;  /* persistence */
	__u32 fwmark;   /* the service's mark, 0 for an address service */
	__be16 svc_port; /* the matched service's port (0: port-0 service) */
	__u16 pad;
	__u64 now;
};

/* The least-connection family's pass over the dest list (sched_scan.h). */
struct scan {
	__u32 key; /* SVC_DESTS index */
	__u32 mode;
	__u32 best;
	__u32 best_w;
	__u64 best_oh;
	__u64 total;
	__s64 r1, r2;
	__u32 c1, c2;
	__u32 c1_w, c2_w;
	__u64 c1_oh, c2_oh;
};

/* A walk over a ring from the schedule position (rr, wrr) or a fallback
 * probe over a bucket table (sh-fallback, mh-fallback): one slot a step,
 * at most `len` steps (sched_ring.h). */
struct walk {
	__u32 svc_id;
	__u32 gen;
	__u32 len;
	__u32 found;
	__u64 p;       /* ring: the schedule position it starts from */
	__u64 skipped; /* steps before the pick */
	__u32 probe;   /* WALK_RING, WALK_SH or WALK_MH */
	__u32 saddr;   /* probe: host order */
	__u32 port;    /* probe: host order, 0 without sh-port/mh-port */
	__u32 ihash;   /* probe: the first slot's offset */
};

/* ip_vs_dest_set_min / ip_vs_dest_set_max over an lblcr set
 * (sched_lblc.h). */
struct setscan {
	struct xvs_lblc_key key;
	__u32 svc_id;
	__u32 max;  /* 0: set_min, 1: set_max */
	__u32 best; /* set_min: dest id; set_max: member index */
	__u32 bw;
	__u64 boh;
};

/* The Call-ID search of a --pe sip packet (sip.h): the payload's first
 * bytes, the scanner's state (xvs_wire::sip::Scanner's fields) and what
 * it found. */
struct sip_scan {
	__u32 mode;
	__u32 pos;
	__u32 dataoff;
	__u32 start;
	__u32 len;
	__u32 domain;
	__u32 colon;
	__u32 n;
	__u32 done;  /* 0: scanning, SIP_FOUND or SIP_FAILED */
	__u32 ready; /* this packet's outcome: 0 none yet, SIP_FOUND, SIP_FAILED */
	struct xvs_sip_key key; /* SIP_FOUND: tk left to persist.h */
	__u8 buf[XVS_SIP_SCAN_MAX];
};

struct xvs_scratch {
	struct sched_in in;
	struct scan scan;
	struct walk walk;
	struct setscan set;
	struct xvs_conn_key fkey; /* xvs_new_conn: the packet's tuple */
	struct xvs_conn out;      /* xvs_new_conn: the forward entry */
	struct xvs_conn fval;
	struct xvs_conn_key rk;
	struct xvs_tmpl_key tk;
	struct xvs_tmpl nt;
	struct xvs_lblc_key lk;
	/* tmpl_assure's keys (16-byte addresses: off its stack, which is
	 * at the deepest call chain's 512 bytes). */
	struct xvs_conn_key ak;
	struct xvs_tmpl_key atk;
	/* svc_lookup's keys (service.h, fwmark.h), likewise. */
	struct xvs_svc_key skey;
	struct xvs_fwm_addr_key fak;
	/* handle_icmp's connection key (icmp_err.h), likewise. */
	struct xvs_conn_key ikey;
	struct xvs_lblc lblc; /* a new lblc/lblcr entry */
	__u32 pad[2];
	struct sip_scan sip;
	struct xvs_sip_tmpl snt; /* a new SIP template */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_scratch);
} XVS_SCRATCH SEC(".maps");

static __always_inline struct xvs_scratch *scratch(void)
{
	__u32 z = 0;

	return bpf_map_lookup_elem(&XVS_SCRATCH, &z);
}

/* Loops are bounded `for` loops whose body is one call of a global
 * function (a "step"), verified once: the verifier walks the loop itself
 * in a few instructions per iteration, on every kernel (bpf_loop, 5.17,
 * is not needed). A step returns non-zero to stop. */
#define STEP_NEXT 0
#define STEP_STOP 1

#endif /* XVS_LIB_SCRATCH_H */
