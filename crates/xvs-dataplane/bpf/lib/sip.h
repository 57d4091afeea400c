/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * --pe sip: the Call-ID of the UDP packet that opens a connection of a
 * persistent service, found as IPVS finds it (ip_vs_pe_sip.c with
 * netfilter's ct_sip_get_header). This is xvs_wire::sip::Scanner in C,
 * block for block: each byte passes the blocks of sip_feed from top to
 * bottom, each taking it or handing it on, so no byte is read twice and
 * nothing goes back. The fixtures compare it with xvs_wire::sip::call_id.
 *
 * The payload's first XVS_SIP_SCAN_MAX bytes are copied into the scratch
 * (tc: they may sit in pages), then fed one at a time to a global
 * function, which the verifier checks once, not once per byte.
 */
#ifndef XVS_LIB_SIP_H
#define XVS_LIB_SIP_H

#include "scratch.h"

enum sip_mode {
	SIP_SCAN = 0,    /* looking for a line end */
	SIP_CR,          /* after CR */
	SIP_LINE,        /* the next byte starts a line */
	SIP_NAME,        /* inside "call-id", n bytes matched */
	SIP_AFTER_I,     /* after a line-starting i */
	SIP_WS,          /* blanks before (colon 0) or after the colon */
	SIP_FOLD_EOL_CR, /* the byte after a CR inside blanks */
	SIP_FOLD_EOL,    /* the byte after an LF inside blanks */
	SIP_FOLD_LF,     /* after CRLF inside blanks: a blank must follow */
	SIP_FOLD_BLANKS, /* the blanks of a continuation line */
	SIP_WORD,        /* the value's first word */
	SIP_DOMAIN,      /* the word after @ */
	SIP_SKIP,        /* bytes before the kernel's next search offset n */
};

#define SIP_FOUND 1
#define SIP_FAILED 2

/* The kernel's isalpha and iswordc (nf_conntrack_sip.c) over its
 * Latin-1 ctype, as bitmaps of 64 bytes each (xvs_wire::sip::is_alpha,
 * is_word). Constants in code: static tables in .rodata would share it
 * with other objects' BTF-less statics. */
static __always_inline int sip_is_alpha(__u32 c)
{
	__u64 w = 0;

	if ((c >> 6) == 1)
		w = 0x07fffffe07fffffeULL;
	else if ((c >> 6) == 3)
		w = 0xff7fffffff7fffffULL;
	return (w >> (c & 63)) & 1;
}

static __always_inline int sip_is_word(__u32 c)
{
	__u64 w = 0;

	if ((c >> 6) == 0)
		w = 0xd7ffff2600000000ULL;
	else if ((c >> 6) == 1)
		w = 0x6fffffffbffffffeULL;
	else if ((c >> 6) == 3)
		w = 0xff7fffffff7fffffULL;
	return (w >> (c & 63)) & 1;
}

/* Byte `n` of the name "call-id" (lower case). */
static __always_inline __u32 sip_name_at(__u32 n)
{
	switch (n) {
	case 0:
		return 'c';
	case 1:
		return 'a';
	case 2:
	case 3:
		return 'l';
	case 4:
		return '-';
	case 5:
		return 'i';
	}
	return 'd';
}

static __always_inline void sip_end(struct sip_scan *s, __u32 how)
{
	s->done = how;
}

static __always_inline void sip_enter_ws(struct sip_scan *s, __u32 colon)
{
	s->mode = SIP_WS;
	s->colon = colon;
}

static __always_inline int sip_fold_blank(struct sip_scan *s, __u32 c)
{
	if (c == ' ' || c == '\t') {
		s->mode = SIP_FOLD_BLANKS;
		return 1;
	}
	sip_end(s, SIP_FAILED);
	return 1;
}

/* sip_skip_whitespace and sip_follow_continuation; 0 when `c` is the
 * value's first byte, for sip_value. */
static __always_inline int sip_blanks(struct sip_scan *s, __u32 c, __u32 pos)
{
	switch (s->mode) {
	case SIP_WS:
		if (c == ' ')
			return 1;
		if (c == '\r' || c == '\n') {
			s->mode = c == '\r' ? SIP_FOLD_EOL_CR : SIP_FOLD_EOL;
			return 1;
		}
		if (!s->colon) {
			if (c == ':')
				sip_enter_ws(s, 1);
			else
				sip_end(s, SIP_FAILED);
			return 1;
		}
		s->mode = SIP_WORD;
		s->start = pos;
		s->len = 0;
		s->domain = 0;
		return 0;
	case SIP_FOLD_EOL_CR:
		if (c == '\n') {
			s->mode = SIP_FOLD_LF;
			return 1;
		}
		return sip_fold_blank(s, c);
	case SIP_FOLD_EOL:
	case SIP_FOLD_LF:
		return sip_fold_blank(s, c);
	case SIP_FOLD_BLANKS:
		/* The byte after the blanks is skipped unread (the kernel's
		 * loop increment after a fold). */
		if (c != ' ' && c != '\t')
			s->mode = SIP_WS;
		return 1;
	}
	return 0;
}

/* callid_len and get_callid's checks; 0 when the byte goes on to the
 * line search (an empty value: the kernel searches on). */
static __always_inline int sip_value(struct sip_scan *s, __u32 c, __u32 pos)
{
	__u32 total;

	if (sip_is_word(c)) {
		if (s->mode == SIP_WORD) {
			if (s->len <= XVS_SIP_CALLID_MAX)
				s->len++;
		} else if (s->domain <= XVS_SIP_CALLID_MAX) {
			s->domain++;
		}
		return 1;
	}
	if (s->mode == SIP_WORD && c == '@' && s->len > 0) {
		s->mode = SIP_DOMAIN;
		return 1;
	}
	if ((s->mode == SIP_WORD && s->len == 0) || (s->mode == SIP_DOMAIN && s->domain == 0)) {
		/* The next search starts at the relative start plus the
		 * value's absolute offset; from the value's start to here
		 * every byte is a word byte or @, never a line end. */
		s->dataoff += s->start;
		if (s->dataoff > pos) {
			s->mode = SIP_SKIP;
			s->n = s->dataoff;
			return 1;
		}
		s->mode = SIP_SCAN;
		return 0;
	}
	total = s->mode == SIP_DOMAIN ? s->len + 1 + s->domain : s->len;
	if (total <= XVS_SIP_CALLID_MAX && (c == '\r' || c == '\n')) {
		s->len = total;
		sip_end(s, SIP_FOUND);
	} else {
		sip_end(s, SIP_FAILED);
	}
	return 1;
}

/* Line ends and the first byte of a line. */
static __always_inline void sip_lines(struct sip_scan *s, __u32 c)
{
	if (s->mode == SIP_CR && c == '\n') {
		s->mode = SIP_LINE;
		return;
	}
	if (s->mode != SIP_CR && s->mode != SIP_LINE) {
		if (c == '\r')
			s->mode = SIP_CR;
		else if (c == '\n')
			s->mode = SIP_LINE;
		return;
	}
	/* The line's first byte is taken whatever it is (a CR or LF here
	 * ends no line: the kernel steps over it). */
	if (c == 'c' || c == 'C') {
		s->n = 1;
		s->mode = SIP_NAME;
	} else if (c == 'i' || c == 'I') {
		s->mode = SIP_AFTER_I;
	} else {
		s->mode = SIP_SCAN;
	}
}

/* One byte through the scanner in the scratch; 1 once the outcome is
 * known. A global function: verified once. */
__noinline int sip_feed(__u32 c)
{
	struct xvs_scratch *sc = scratch();
	struct sip_scan *s;
	__u32 pos, lc;
	int taken = 0;

	if (!sc)
		return 1;
	s = &sc->sip;
	if (s->done)
		return 1;
	c &= 0xff;
	pos = s->pos++;
	if (s->mode == SIP_AFTER_I) {
		/* i is the compact name when a non-letter follows; that byte
		 * is the first of the blanks before the colon. */
		if (sip_is_alpha(c)) {
			s->mode = SIP_SCAN;
			taken = 1;
		} else {
			sip_enter_ws(s, 0);
		}
	}
	if (!taken && s->mode == SIP_NAME) {
		lc = (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
		if (lc == sip_name_at(s->n)) {
			if (++s->n == 7)
				sip_enter_ws(s, 0);
			taken = 1;
		} else {
			/* The kernel searches on from the line's second byte;
			 * those matched were no line ends. */
			s->mode = SIP_SCAN;
		}
	}
	if (!taken)
		taken = sip_blanks(s, c, pos);
	if (!taken && !s->done && (s->mode == SIP_WORD || s->mode == SIP_DOMAIN))
		taken = sip_value(s, c, pos);
	if (!taken && s->mode == SIP_SKIP) {
		if (pos < s->n)
			taken = 1;
		else
			s->mode = SIP_SCAN;
	}
	if (!taken && !s->done)
		sip_lines(s, c);
	return s->done != 0;
}

/* After the last byte: the outcome when the payload ended first (inside
 * the value: no line end follows it; anywhere else: not found). */
static __always_inline void sip_finish(struct sip_scan *s)
{
	if (!s->done)
		sip_end(s, SIP_FAILED);
}

/* 64-bit FNV-1a of the Call-ID `s->len` bytes at `s->start` of the
 * copied payload, into the template key (xvs_core's callid_hash). */
__noinline int sip_hash(void)
{
	struct xvs_scratch *sc = scratch();
	struct sip_scan *s;
	__u64 h = 0xcbf29ce484222325ULL;
	__u32 i, len, start;

	if (!sc)
		return -1;
	s = &sc->sip;
	len = s->len;
	start = s->start;
	for (i = 0; i < XVS_SIP_CALLID_MAX; i++) {
		if (i >= len)
			break;
		h ^= s->buf[(start + i) & (XVS_SIP_SCAN_MAX - 1)];
		h *= 0x100000001b3ULL;
	}
	s->key.callid_len = len;
	s->key.callid_hash = h;
	return 0;
}

/* The payload's first bytes into the scratch; how many. A global
 * function of its own: the count it returns is unknown to the caller,
 * which then verifies its scan once, not once per possible count. */
__noinline int sip_copy(xvs_ctx *ctx, __u32 off, __u32 len)
{
	struct xvs_scratch *sc = scratch();

	if (!sc)
		return 0;
	return ctx_copy_bytes(ctx, off, sc->sip.buf,
			      len < XVS_SIP_SCAN_MAX ? len : XVS_SIP_SCAN_MAX, XVS_SIP_SCAN_MAX);
}

/* The Call-ID of the UDP payload at `off`, `len` bytes long: sets the
 * scratch's sip.ready to SIP_FOUND (key.callid_* set) or SIP_FAILED. */
__noinline int sip_scan(xvs_ctx *ctx, __u32 off, __u32 len)
{
	struct xvs_scratch *sc = scratch();
	struct sip_scan *s;
	__u32 i, n;

	if (!sc)
		return -1;
	s = &sc->sip;
	s->mode = SIP_SCAN;
	s->pos = 0;
	s->dataoff = 0;
	s->start = 0;
	s->len = 0;
	s->domain = 0;
	s->colon = 0;
	s->n = 0;
	s->done = 0;
	s->ready = SIP_FAILED;
	if (len == 0)
		return 0;
	n = sip_copy(ctx, off, len);
	for (i = 0; i < XVS_SIP_SCAN_MAX; i++) {
		if (i >= n)
			break;
		if (sip_feed(s->buf[i]))
			break;
	}
	sip_finish(s);
	if (s->done != SIP_FOUND)
		return 0;
	sip_hash();
	s->ready = SIP_FOUND;
	return 0;
}

#endif /* XVS_LIB_SIP_H */
