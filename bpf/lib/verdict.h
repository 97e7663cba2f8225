/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one exit for drops, and the hook points later issues fill in:
 * - kl_policy_egress / kl_policy_ingress: network policy (now: allow all);
 * - kl_flow_event: flow visibility (now: nothing is emitted).
 * Every call site already passes what those need (the packet tuple, the
 * endpoints on either side, the verdict and the drop reason).
 */
#ifndef KL_VERDICT_H
#define KL_VERDICT_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "kinglet.h"
#include "pod_maps.h"
#include "pkt4.h"

#define KL_POLICY_ALLOW 0

/* Flow-event hook (observe issue): a no-op call site for now. */
static __always_inline void
kl_flow_event(struct __sk_buff *ctx, const struct pkt4 *p, __u32 verdict, __u32 reason)
{
	(void)ctx;
	(void)p;
	(void)verdict;
	(void)reason;
}

/* Policy hook for traffic a local pod sends (policy issue): allow for now. */
static __always_inline int
kl_policy_egress(struct __sk_buff *ctx, const struct pkt4 *p, const struct kl_endpoint *src)
{
	(void)ctx;
	(void)p;
	(void)src;
	return KL_POLICY_ALLOW;
}

/* Policy hook for traffic to a local pod (policy issue): allow for now. */
static __always_inline int
kl_policy_ingress(struct __sk_buff *ctx, const struct pkt4 *p, const struct kl_endpoint *dst, int reply)
{
	(void)ctx;
	(void)p;
	(void)dst;
	(void)reply;
	return KL_POLICY_ALLOW;
}

/* Count the drop under its reason, report it, and drop. */
static __always_inline int kl_drop(struct __sk_buff *ctx, const struct pkt4 *p, __u32 reason)
{
	__u64 *n;

	n = bpf_map_lookup_elem(&KL_DROP_MAP, &reason);
	if (n)
		*n += 1; /* per-CPU: no atomics needed */
	kl_flow_event(ctx, p, KL_VERDICT_DROPPED, reason);
	return TC_ACT_SHOT;
}

#endif /* KL_VERDICT_H */
