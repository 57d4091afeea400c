/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The director's maps and the read-only globals the loader sets. Map
 * names are pin names: with type, key and value sizes, max_entries and
 * flags they are the on-disk ABI a restarted daemon reuses (XVS_ABI), so
 * none of them changes without XVS_ABI_VERSION. Default sizes; user space
 * overrides every max_entries before load. XVS_SCRATCH lives with its
 * value type in scratch.h.
 */
#ifndef XVS_LIB_MAPS_H
#define XVS_LIB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xvs.h"

#ifndef BPF_F_MMAPABLE
#define BPF_F_MMAPABLE (1U << 10)
#endif

/* A map update's error when BPF_NOEXIST finds the key (<errno.h> drags
 * in libc headers). */
#define EEXIST_ 17

/* ---- the table (written by xvsd) ---- */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct xvs_svc_key);
	__type(value, struct xvs_svc);
} SVC_MAP SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct xvs_dest);
} DEST_MAP SEC(".maps");

/* rr/wrr rings and dh/sh/mh bucket tables, see struct xvs_svc. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 18);
	__type(key, struct xvs_ring_key);
	__type(value, __u32);
} RING_MAP SEC(".maps");

/* A service's dests in kernel list order, per generation: svc_id * 2 + gen. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct xvs_svc_dests);
} SVC_DESTS SEC(".maps");

/* Next hops of DR/TUN dests (xvs.h), written by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct xvs_dest_nh);
} DEST_NH SEC(".maps");

/* ---- runtime state (written by the program, read and expired by xvsd) ---- */

#include "conn_map.h"

/* rr/wrr schedule positions, by service id. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} SCHED_POS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct xvs_dest_conns);
} DEST_CONNS SEC(".maps");

/* The mark classifier (fwmark.h): address nodes and their port sets. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, XVS_FWM_NODES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xvs_fwm_addr_key);
	__type(value, struct xvs_fwm_addr);
} FWM_ADDR SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_FWM_PORTS_MAX);
	__type(key, struct xvs_fwm_port_key);
	__type(value, __u32);
} FWM_PORT SEC(".maps");

/* Persistence templates (-p). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct xvs_tmpl_key);
	__type(value, struct xvs_tmpl);
} PERSIST_MAP SEC(".maps");

/* --pe sip templates: PERSIST_MAP's, keyed with the Call-ID as well.
 * Allocated as used (most directors have no SIP service). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct xvs_sip_key);
	__type(value, struct xvs_sip_tmpl);
} SIP_TMPL SEC(".maps");

/* The SIP template of each --pe sip connection (forward key), IPVS's
 * cp->control: its first answer marks the template assured, and expiry
 * keeps the template while the connection lives. Deleted with the
 * connection by xvsd's expiry; allocated as used. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct xvs_conn_key);
	__type(value, struct xvs_sip_key);
} SIP_CTL SEC(".maps");

/* lblc/lblcr locality caches, keyed by (service, destination address). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct xvs_lblc_key);
	__type(value, struct xvs_lblc);
} LBLC_MAP SEC(".maps");

/* ---- statistics and counters ---- */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct xvs_stats);
} SVC_STATS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct xvs_stats);
} DEST_STATS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_CNT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} XVS_CNT SEC(".maps");

_Static_assert(XVS_CNT_MAX <= XVS_CNT_SLOTS, "XVS_CNT_SLOTS too small");

/* ---- next hops of NAT packets (nexthop.h) ---- */

/* Next-hop cache (see xvs.h): per CPU, so a slot has one writer. Not
 * pinned: it is only a cache. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_NH_SLOTS);
	__type(key, __u32);
	__type(value, struct xvs_nh);
} XVS_NH SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_nh_cfg);
} XVS_NH_CFG SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);   /* ifindex */
	__type(value, enum xvs_iface_flags);
} XVS_IFACE SEC(".maps");

/* ---- tests and versions ---- */

/* Test hook: when slot 0 is non-zero it is the state of an xorshift64
 * generator that replaces bpf_get_prandom_u32 (twos), so a test can feed
 * the program and the reference model the same random numbers. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} XVS_RAND SEC(".maps");

/* Pinned with the other maps; holds the XVS_ABI_VERSION of the data plane
 * that made them (written by the loader; the program never reads it). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} XVS_ABI SEC(".maps");

const volatile struct xvs_abi xvs_abi = {
	.version = XVS_ABI_VERSION,
	.cnt_max = XVS_CNT_MAX,
};

/* Optional kernel features (enum xvs_feat), probed by the loader on the
 * running kernel and set before load: the code of a missing one is dead
 * and the verifier never sees it. */
const volatile __u32 xvs_feat = 0;
#define HAVE(f) (xvs_feat & (f))

#endif /* XVS_LIB_MAPS_H */
