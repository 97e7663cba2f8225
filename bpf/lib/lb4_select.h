/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IPv4 backend selection shared by the socket LB (lb4.h) and the per-packet
 * tc LB (lb4_tc.h): the backend session affinity remembers, and a uniformly
 * random slot of the frontend. Both return a backend id, 0 for none, and set
 * *slot to the slot (1..count) it sits in.
 */
#ifndef KL_LB4_SELECT_H
#define KL_LB4_SELECT_H

#include "lb_common.h"

/* The backend id in slot `slot` (1..count) of the frontend, 0 for none. */
static __always_inline __u32 lb4_slot_backend(const struct kl_lb_svc *front, __u16 slot)
{
	__u32 idx = front->slot_base + slot - 1;
	__u32 *id = bpf_map_lookup_elem(&KL_LB4_SLOT_MAP, &idx);

	return id ? *id : 0;
}

/* The backend affinity remembers for this client, while its slot still holds it. */
static __always_inline __u32
lb4_affine_backend(const struct kl_lb_aff_key *aff_key, const struct kl_lb_svc *front, __u64 now, __u16 *slot)
{
	struct kl_lb_aff *aff = kl_aff_lookup(aff_key, front, now);
	__u32 id;

	if (!aff)
		return 0;
	id = lb4_slot_backend(front, aff->slot);
	if (!id || id != aff->backend_id)
		return 0;
	*slot = aff->slot;
	return id;
}

/* A backend from one of the frontend's `count` slots, picked uniformly at random. */
static __always_inline __u32
lb4_random_backend(const struct kl_lb_svc *front, __u16 count, __u16 *slot)
{
	*slot = kl_pick_slot(count);
	return lb4_slot_backend(front, *slot);
}

#endif /* KL_LB4_SELECT_H */
