// SPDX-License-Identifier: GPL-2.0-only
/*
 * xvs connection expiry scan: a map-element iterator over the director's
 * CONN_MAP (docs/design.md, "Expiry"). An object of its own, loaded after
 * the director's program and pointed at its CONN_MAP: kernels without
 * iterators (before 5.9) or whose policy refuses tracing programs then
 * lose only this scan (xvsd walks the table itself), never the data plane.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xvs.h"
#include "lib/conn_map.h"
#include "lib/addr.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_expiry_cfg);
} XVS_EXPIRY_CFG SEC(".maps");

/* The context of a map-element iterator, as the kernel defines it
 * (struct bpf_iter__bpf_map_elem, four pointer-sized fields); only `seq`
 * of its meta is read. */
struct seq_file;
struct bpf_iter_meta {
	struct seq_file *seq;
} __attribute__((preserve_access_index));
struct xvs_iter_map_elem {
	struct bpf_iter_meta *meta;
	void *map;
	void *key;
	void *value;
};

/* Why: IPVS expires each connection with a timer of its own; here xvsd
 * looks at the whole table once a second. Reading millions of entries
 * into user space for that cost a CPU (≈ 40 % at 1 M entries); this
 * iterator, attached to CONN_MAP, walks it in the kernel and writes out
 * only the entries xvsd has to act on (struct xvs_expiry_rec). xvsd
 * re-checks each before deleting, so a packet that refreshes an entry in
 * between wins. */
SEC("iter/bpf_map_elem")
int xvs_expiry_scan(struct xvs_iter_map_elem *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct xvs_conn_key *key = ctx->key;
	struct xvs_conn *c = ctx->value;
	struct xvs_expiry_cfg *cfg;
	struct xvs_expiry_rec rec = {};
	__u32 zero = 0, st;
	__u64 idle;

	if (!key || !c)
		return 0;
	cfg = bpf_map_lookup_elem(&XVS_EXPIRY_CFG, &zero);
	if (!cfg)
		return 0;
	/* One scan at a time (xvsd's), so a plain increment. */
	cfg->visited++;
	idle = cfg->now_ns > c->last_seen_ns ? cfg->now_ns - c->last_seen_ns : 0;
	__builtin_memcpy(&rec.key, key, sizeof(rec.key));
	rec.svc_id = c->svc_id;
	rec.flags = c->flags;
	if (c->flags & XVS_CONN_F_REPLY) {
		struct xvs_conn_key peer;
		struct xvs_conn *fwd;

		if (c->flags & XVS_CONN_F_OPS) {
			if (idle <= cfg->ops_timeout_ns)
				return 0;
			rec.kind = XVS_EXP_OPS;
		} else {
			if (idle <= cfg->orphan_grace_ns)
				return 0;
			__builtin_memcpy(&peer, &c->peer, sizeof(peer));
			fwd = bpf_map_lookup_elem(&CONN_MAP, &peer);
			if (fwd && conn_key_eq(&fwd->peer, &rec.key))
				return 0;
			rec.kind = XVS_EXP_ORPHAN;
		}
	} else {
		st = c->state;
		if (st >= XVS_S_LAST)
			st = XVS_S_NONE;
		if (idle > cfg->timeout_ns[st])
			rec.kind = XVS_EXP_IDLE;
		else if (c->flags & XVS_CONN_F_PERSIST)
			rec.kind = XVS_EXP_PERSIST;
		else
			return 0;
	}
	bpf_seq_write(seq, &rec, sizeof(rec));
	return 0;
}

