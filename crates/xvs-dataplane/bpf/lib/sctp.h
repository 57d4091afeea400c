/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * SCTP as IPVS sees it (ip_vs_proto_sctp.c; docs/research/sctp-and-sip.md
 * has the facts): the event a packet's first chunk makes and IPVS's
 * state table. sctp_crc.h has the checksum update of a NAT rewrite.
 */
#ifndef XVS_LIB_SCTP_H
#define XVS_LIB_SCTP_H

#include "xvs.h"

#define SCTP_HDR_LEN 12   /* common header: ports, vtag, checksum */
#define SCTP_CRC_OFF 8    /* the checksum's offset in it */
#define SCTP_CHUNK_HDR 4  /* type, flags, length */
#define SCTP_CID_INIT 1
#define SCTP_CID_ABORT 6
#define SCTP_CID_COOKIE_ECHO 10
#define SCTP_CID_COOKIE_ACK 11
/* No chunk header in the packet: no event (set_sctp_state returns). */
#define SCTP_CID_NONE 0xff

/* Directions: the rows of IPVS's tables (IP_VS_DIR_*). */
#define DIR_INPUT 0
#define DIR_OUTPUT 1
#define DIR_INPUT_ONLY 2

/* IPVS's events (IP_VS_SCTP_*), by chunk type 0..14; later types are
 * DATA. */
enum { EV_D, EV_I, EV_IA, EV_CE, EV_CA, EV_S, EV_SA, EV_SC, EV_ERR, EV_AB, EV_MAX };

static const __u8 sctp_events[15] = {
	EV_D, EV_I, EV_IA, EV_D, EV_D, EV_D, EV_AB, EV_S, EV_SA, EV_ERR, EV_CE, EV_CA, EV_D, EV_D,
	EV_SC,
};

/* sctp_states[direction][event][state], the kernel's state numbers
 * (stored + XVS_S_SCTP_NONE), transcribed from ip_vs_proto_sctp.c. */
#define NO 0
#define I1 1
#define IN 2
#define CS 3
#define CR 4
#define CW 5
#define CO 6
#define CE 7
#define ES 8
#define SS 9
#define SR 10
#define SA 11
#define RJ 12
#define CL 13
#define SCTP_NSTATES 14

static const __u8 sctp_states[3][EV_MAX][SCTP_NSTATES] = {
	{ /* INPUT */
	  /* d   */ { ES, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL },
	  /* i   */ { I1, IN, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, IN, IN },
	  /* i_a */ { CW, CW, CW, CS, CR, CO, CO, CE, ES, SS, SR, SA, RJ, CL },
	  /* c_e */ { CR, IN, IN, CR, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL },
	  /* c_a */ { ES, I1, IN, CS, CR, CW, CO, ES, ES, SS, SR, SA, RJ, CL },
	  /* s   */ { SR, I1, IN, CS, CR, CW, CO, CE, SR, SS, SR, SA, RJ, CL },
	  /* s_a */ { CL, IN, IN, CS, CR, CW, CO, CE, ES, CL, SR, CL, RJ, CL },
	  /* s_c */ { CL, CL, CL, CS, CR, CW, CO, CE, ES, SS, SR, CL, RJ, CL },
	  /* err */ { CL, I1, IN, CS, CR, CW, CO, CL, ES, SS, SR, SA, RJ, CL },
	  /* ab  */ { CL, CL, CL, CL, CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL } },
	{ /* OUTPUT */
	  /* d   */ { ES, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL },
	  /* i   */ { CW, CW, CW, CW, CW, CW, CW, CW, ES, CW, CW, CW, CW, CW },
	  /* i_a */ { CS, CS, CS, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL },
	  /* c_e */ { CE, CE, CE, CE, CE, CE, CE, CE, ES, SS, SR, SA, RJ, CL },
	  /* c_a */ { ES, ES, ES, ES, ES, ES, ES, ES, ES, SS, SR, SA, RJ, CL },
	  /* s   */ { SS, SS, SS, SS, SS, SS, SS, SS, SS, SS, SR, SA, RJ, CL },
	  /* s_a */ { SA, SA, SA, SA, SA, CW, CO, CE, ES, SA, SA, SA, RJ, CL },
	  /* s_c */ { CL, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL },
	  /* err */ { CL, CL, CL, CL, CL, CW, CO, CE, ES, SS, SR, SA, RJ, CL },
	  /* ab  */ { CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL } },
	{ /* INPUT-ONLY (DR/TUN: the director sees the client's packets only) */
	  /* d   */ { ES, I1, IN, CS, CR, ES, CO, CE, ES, SS, SR, SA, RJ, CL },
	  /* i   */ { I1, IN, IN, IN, IN, IN, CO, CE, ES, SS, SR, SA, IN, IN },
	  /* i_a */ { CE, CE, CE, CE, CE, CE, CO, CE, ES, SS, SR, SA, RJ, CL },
	  /* c_e */ { ES, ES, ES, ES, ES, ES, CO, CE, ES, SS, SR, SA, RJ, CL },
	  /* c_a */ { ES, I1, IN, ES, ES, CW, ES, ES, ES, SS, SR, SA, RJ, CL },
	  /* s   */ { SR, I1, IN, CS, CR, CW, CO, CE, SR, SS, SR, SA, RJ, CL },
	  /* s_a */ { CL, IN, IN, CS, CR, CW, CO, CE, CL, CL, SR, CL, RJ, CL },
	  /* s_c */ { CL, CL, CL, CL, CL, CW, CO, CE, ES, SS, CL, CL, RJ, CL },
	  /* err */ { CL, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL },
	  /* ab  */ { CL, CL, CL, CL, CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL } },
};

#undef NO
#undef I1
#undef IN
#undef CS
#undef CR
#undef CW
#undef CO
#undef CE
#undef ES
#undef SS
#undef SR
#undef SA
#undef RJ
#undef CL

/* The stored state after first chunk `chunk` in direction `dir` on
 * stored state `old` (set_sctp_state). A packet without a chunk changes
 * nothing; a state that is not SCTP's (never written by xvs) closes. */
static __always_inline __u32 sctp_next_state(__u32 dir, __u8 chunk, __u32 old)
{
	/* Masked: clang may compute the address before the checks, and
	 * the verifier refuses an out-of-range offset even then. */
	__u32 ev, st = (old - XVS_S_SCTP_NONE) & 15;

	if (chunk == SCTP_CID_NONE)
		return old;
	if (old < XVS_S_SCTP_NONE || old >= XVS_S_LAST || st >= SCTP_NSTATES ||
	    dir > DIR_INPUT_ONLY)
		return XVS_S_SCTP_CLOSED;
	ev = chunk < sizeof(sctp_events) ? sctp_events[chunk] : EV_D;
	/* The verifier knows no table's contents: keep the check clang
	 * would drop, knowing them. */
	asm volatile("" : "+r"(ev));
	if (ev >= EV_MAX)
		return XVS_S_SCTP_CLOSED;
	return XVS_S_SCTP_NONE + sctp_states[dir][ev][st];
}

#endif /* XVS_LIB_SCTP_H */
