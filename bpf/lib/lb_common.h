/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Socket-LB logic shared by both families: kernel feature switches, verdicts,
 * refusing a connection, the affinity client key. The backend pick and its
 * affinity records are in lb_pick.h.
 */
#ifndef KL_LB_COMMON_H
#define KL_LB_COMMON_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "kinglet.h"
#include "lb_maps.h"

/*
 * Optional kernel features, chosen at build time (the Makefile builds one
 * object per feature set; the agent loads the one its kernel probe allows):
 * - KL_HAVE_SET_RETVAL: bpf_set_retval() in cgroup programs (5.18+), so a
 *   refused connect() fails with ECONNREFUSED instead of EPERM;
 * - KL_HAVE_NETNS_COOKIE: bpf_get_netns_cookie() in sock_addr programs
 *   (5.7+), so affinity is per network namespace (per pod).
 */
#ifndef KL_HAVE_SET_RETVAL
#define KL_HAVE_SET_RETVAL 1
#endif
#ifndef KL_HAVE_NETNS_COOKIE
#define KL_HAVE_NETNS_COOKIE 1
#endif

/* cgroup sock_addr verdicts */
#define KL_SYS_REJECT  0
#define KL_SYS_PROCEED 1

/* Results of a forward translation (besides a negative errno). */
#define KL_XLATE_DONE  0
#define KL_XLATE_PASS  1    /* not a frontend: leave the address alone */

#define KL_ECONNREFUSED 111
#define KL_EHOSTUNREACH 113
#define KL_ENOMEM       12

/*
 * Reject the syscall. With bpf_set_retval() the error is the one given; on
 * older kernels a rejecting sock_addr program always yields EPERM.
 */
static __always_inline int kl_reject(int err)
{
#if KL_HAVE_SET_RETVAL
	bpf_set_retval(-err);
#else
	(void)err;
#endif
	return KL_SYS_REJECT;
}

static __always_inline int kl_is_lb_proto(__u32 proto)
{
	return proto == KL_PROTO_TCP || proto == KL_PROTO_UDP;
}

/* Who an affinity record belongs to: the socket's netns, or the node. */
static __always_inline __u64 kl_client_id(struct bpf_sock_addr *ctx)
{
#if KL_HAVE_NETNS_COOKIE
	return bpf_get_netns_cookie(ctx);
#else
	(void)ctx;
	return 0;
#endif
}

#endif /* KL_LB_COMMON_H */
