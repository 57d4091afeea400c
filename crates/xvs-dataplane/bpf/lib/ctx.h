/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The packet context, and the one place where the two attachments differ
 * (docs/design.md, "Attach modes"). Every program is one source built
 * twice: as-is for XDP, with -DXVS_TC for tc's clsact ingress hook, where
 * packets stay skbs. Everything below the entry is written against the
 * ctx_* helpers and CTX_* constants here; no other file tests XVS_TC.
 *
 *   xvs_ctx            struct xdp_md / struct __sk_buff
 *   CTX_PROG(x, t)     the entry's section and name (x for XDP, t for tc)
 *   ACT_PASS/ACT_DROP  the verdicts
 *   ctx_data/_end      direct packet access
 *   ctx_len            the frame's length (tc: pages included)
 *   ctx_pull_headers   make the headers directly readable (tc)
 *   ctx_linearize      make the whole frame readable (tc)
 *   ctx_load_bytes     copy bytes out from anywhere in the frame
 *   CTX_GSO            a GRO/GSO packet (tc)
 *   ctx_adjust_room    open or close room after the Ethernet header
 *   ctx_change_tail    set the frame's length
 *   ctx_note_egress    remember the egress device (tc, for test runs)
 *   CTX_TX_REDIRECT    "back out" is a redirect to the ingress device (tc)
 *   CTX_PEER           bpf_redirect_peer exists (tc)
 *   ctx_csum_full      the L4 checksum field holds a full sum
 *   ctx_l4_csum_replace  the kernel's L4 checksum update (tc)
 *   __ctx_skb_call     out of line in tc, inline in XDP
 */
#ifndef XVS_LIB_CTX_H
#define XVS_LIB_CTX_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* What ctx_adjust_room reports besides 0. */
#define CTX_ROOM_FAILED (-1) /* the helper refused: the frame is unchanged */
#define CTX_ROOM_LOST (-2)   /* XDP moved the head, the frame is too short */

#ifdef XVS_TC
/* ---- tc: the packet is an skb ---- */
#include <linux/pkt_cls.h>
#include <bpf/bpf_core_read.h>

typedef struct __sk_buff xvs_ctx;

#define CTX_PROG(xdp_name, tc_name) SEC("tc") int tc_name
#define ACT_PASS TC_ACT_OK
#define ACT_DROP TC_ACT_SHOT
/* A GRO/GSO packet: its segments, not its length, must fit the MTU. */
#define CTX_GSO(ctx) ((ctx)->gso_size != 0)
#define CTX_TX_REDIRECT 1
#define CTX_PEER 1
/* Calls of skb helpers that move packet data spill across them: a
 * function of its own keeps those spills out of its caller's frame (the
 * call chains are at the verifier's 512-byte stack limit). */
#define __ctx_skb_call static __noinline

/* The kernel's skb behind the context (kfunc, 6.3+), for the one field
 * the context does not show: the checksum state. CO-RE finds the
 * bitfield in this kernel's sk_buff. Weak: where the kernel lacks it,
 * libbpf leaves it unresolved and the program takes the helpers. */
extern void *bpf_cast_to_kern_ctx(void *) __ksym __weak;
struct sk_buff___xvs {
	__u8 ip_summed : 2;
} __attribute__((preserve_access_index));
#define CHECKSUM_UNNECESSARY 1

/* Make the first `want` bytes (or the whole packet, if shorter) directly
 * readable; an skb's linear part may end before the headers do (GRO, a
 * NIC's header split). */
static __always_inline void ctx_pull_headers(xvs_ctx *ctx, __u32 want)
{
	if (ctx->data + want > ctx->data_end && ctx->data_end - ctx->data < ctx->len)
		bpf_skb_pull_data(ctx, ctx->len < want ? ctx->len : want);
}

/* Make the whole packet directly readable; non-zero on failure. */
static __always_inline long ctx_linearize(xvs_ctx *ctx)
{
	return bpf_skb_pull_data(ctx, ctx->len);
}

/* `len` bytes at `off` into `buf`, from pages too; non-zero when the
 * frame is shorter. */
static __always_inline long ctx_load_bytes(xvs_ctx *ctx, __u32 off, void *buf, __u32 len)
{
	return bpf_skb_load_bytes(ctx, off, buf, len);
}

/* Up to `n` bytes at `off` into `buf` (`max`, a power of two, bytes
 * long), from pages too; how many were copied. */
static __always_inline __u32 ctx_copy_bytes(xvs_ctx *ctx, __u32 off, __u8 *buf, __u32 n,
					    __u32 max)
{
	if (n == 0)
		return 0;
	/* 1..max, as the verifier needs to see it */
	n = ((n - 1) & (max - 1)) + 1;
	if (bpf_skb_load_bytes(ctx, off, buf, n))
		return 0;
	return n;
}

/* The payload may sit in pages: the skb's length, not the linear part. */
static __always_inline __u32 ctx_len(xvs_ctx *ctx)
{
	return ctx->len;
}

/* `flags`: BPF_F_ADJ_ROOM_*, e.g. to mark the skb encapsulated so that
 * GSO segments the inner packet and repeats the outer headers. */
static __always_inline int ctx_adjust_room(xvs_ctx *ctx, int len, __u64 flags)
{
	return bpf_skb_adjust_room(ctx, len, BPF_ADJ_ROOM_MAC, flags) ? CTX_ROOM_FAILED : 0;
}

/* The frame becomes `len` bytes long, `delta` bytes longer than now. */
static __always_inline long ctx_change_tail(xvs_ctx *ctx, __u32 len, int delta)
{
	return bpf_skb_change_tail(ctx, len, 0);
}

/* BPF_PROG_TEST_RUN does not perform redirects: cb[0] tells it where the
 * frame would have gone ("back out" or "elsewhere"). */
static __always_inline void ctx_note_egress(xvs_ctx *ctx, __u32 ifindex)
{
	ctx->cb[0] = ifindex;
}

/* The device "back out" means (tc: a redirect to it). */
static __always_inline __u32 ctx_tx_ifindex(xvs_ctx *ctx)
{
	return ctx->ifindex;
}

static __always_inline long ctx_redirect_peer(__u32 ifindex)
{
	return bpf_redirect_peer(ifindex, 0);
}

/* CHECKSUM_NONE or _UNNECESSARY (verified on receipt, the usual case off
 * a NIC or a veth whose sender finished the sum): the L4 field is a full
 * checksum that may be updated in place. Unknown without the kfunc
 * (`have_kfunc`: the loader's csum_state feature): then 0, and the
 * kernel's helpers get every state right. */
static __always_inline int ctx_csum_full(xvs_ctx *ctx, int have_kfunc)
{
	struct sk_buff___xvs *kskb;

	if (!have_kfunc || !bpf_ksym_exists(bpf_cast_to_kern_ctx))
		return 0;
	kskb = bpf_cast_to_kern_ctx(ctx);
	return BPF_CORE_READ_BITFIELD(kskb, ip_summed) <= CHECKSUM_UNNECESSARY;
}

static __always_inline long ctx_l4_csum_replace(xvs_ctx *ctx, __u32 off, __u64 from, __u64 to,
						__u64 flags)
{
	return bpf_l4_csum_replace(ctx, off, from, to, flags);
}

/* XDP builds only (testbeds' XDP_PASS program). */
#define CTX_XDP_PASS_PROG()

#else
/* ---- XDP: the packet is one linear buffer ---- */

typedef struct xdp_md xvs_ctx;

#define CTX_PROG(xdp_name, tc_name) SEC("xdp") int xdp_name
#define ACT_PASS XDP_PASS
#define ACT_DROP XDP_DROP
#define CTX_GSO(ctx) 0
#define CTX_TX_REDIRECT 0
#define CTX_PEER 0
#define __ctx_skb_call static __always_inline

static __always_inline void ctx_pull_headers(xvs_ctx *ctx, __u32 want)
{
}

static __always_inline long ctx_linearize(xvs_ctx *ctx)
{
	return 0;
}

/* `len` (a constant) bytes at `off` into `buf`: the frame is linear, and
 * a bounded offset keeps the verifier's packet range. bpf_xdp_load_bytes
 * is younger (5.18) than the kernels xvs runs on. */
static __always_inline long ctx_load_bytes(xvs_ctx *ctx, __u32 off, void *buf, __u32 len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	void *at = data + (off & 0xffff);

	if (at + len > data_end)
		return -1;
	__builtin_memcpy(buf, at, len);
	return 0;
}

/* Up to `n` bytes at `off` (below 512: a payload behind the headers)
 * into `buf` (`max` bytes long), a byte at a time: the frame is linear,
 * and bpf_xdp_load_bytes is younger than the kernels served. */
static __always_inline __u32 ctx_copy_bytes(xvs_ctx *ctx, __u32 off, __u8 *buf, __u32 n,
					    __u32 max)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *at = (__u8 *)data + (off & 0x1ff);
	__u8 *p;
	__u32 i;

	for (i = 0; i < max; i++) {
		p = at + i;
		if (i >= n || (void *)(p + 1) > data_end)
			break;
		buf[i] = *p;
	}
	return i;
}

/* From the pointers: the verifier refuses 32-bit arithmetic on them,
 * which clang may make of the u32 fields' difference. */
static __always_inline __u32 ctx_len(xvs_ctx *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	return data_end - data;
}

/* The head moves, and the Ethernet header with it: saved and written
 * back at the new start. */
static __always_inline int ctx_adjust_room(xvs_ctx *ctx, int len, __u64 flags)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr e;

	if (data + sizeof(e) > data_end)
		return CTX_ROOM_FAILED;
	__builtin_memcpy(&e, data, sizeof(e));
	if (bpf_xdp_adjust_head(ctx, -len))
		return CTX_ROOM_FAILED;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + sizeof(e) > data_end)
		return CTX_ROOM_LOST;
	__builtin_memcpy(data, &e, sizeof(e));
	return 0;
}

static __always_inline long ctx_change_tail(xvs_ctx *ctx, __u32 len, int delta)
{
	return bpf_xdp_adjust_tail(ctx, delta);
}

static __always_inline void ctx_note_egress(xvs_ctx *ctx, __u32 ifindex)
{
}

static __always_inline __u32 ctx_tx_ifindex(xvs_ctx *ctx)
{
	return ctx->ingress_ifindex;
}

/* Never called: CTX_PEER is 0. */
static __always_inline long ctx_redirect_peer(__u32 ifindex)
{
	return bpf_redirect(ifindex, 0);
}

/* An XDP frame's checksum fields are what arrived: full sums. */
static __always_inline int ctx_csum_full(xvs_ctx *ctx, int have_kfunc)
{
	return 1;
}

/* Never called: ctx_csum_full is always 1. */
static __always_inline long ctx_l4_csum_replace(xvs_ctx *ctx, __u32 off, __u64 from, __u64 to,
						__u64 flags)
{
	return -1;
}

/* For testbeds: lets a veth peer receive XDP_REDIRECTed frames. */
#define CTX_XDP_PASS_PROG()                                                                        \
	SEC("xdp") int xdp_pass(struct xdp_md *ctx)                                                \
	{                                                                                          \
		return XDP_PASS;                                                                   \
	}

#endif /* XVS_TC */

/* Direct packet access, the same in both. */
static __always_inline void *ctx_data(xvs_ctx *ctx)
{
	return (void *)(long)ctx->data;
}

static __always_inline void *ctx_data_end(xvs_ctx *ctx)
{
	return (void *)(long)ctx->data_end;
}

#endif /* XVS_LIB_CTX_H */
