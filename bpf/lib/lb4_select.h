/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IPv4 backend selection shared by the socket LB (lb4.h) and the per-packet
 * tc LB (lb4_tc.h): the backend session affinity remembers, and a uniformly
 * random slot of the frontend. Both return a backend id, 0 for none, and set
 * *slot to the slot it sits in. `key` is the frontend's key; its slot field is
 * overwritten.
 */
#ifndef KL_LB4_SELECT_H
#define KL_LB4_SELECT_H

#include "lb_common.h"

/* The backend affinity remembers for this client, while its slot still holds it. */
static __always_inline __u32
lb4_affine_backend(struct kl_lb4_key *key, const struct kl_lb_aff_key *aff_key,
		   const struct kl_lb_svc *front, __u64 now, __u16 *slot)
{
	struct kl_lb_aff *aff = kl_aff_lookup(aff_key, front, now);
	struct kl_lb_svc *slot_val;

	if (!aff)
		return 0;
	key->slot = aff->slot;
	slot_val = bpf_map_lookup_elem(&KL_LB4_SVC_MAP, key);
	if (!slot_val || slot_val->backend_id != aff->backend_id)
		return 0;
	*slot = key->slot;
	return aff->backend_id;
}

/* A backend from one of the frontend's `count` slots, picked uniformly at random. */
static __always_inline __u32
lb4_random_backend(struct kl_lb4_key *key, __u16 count, __u16 *slot)
{
	struct kl_lb_svc *slot_val;

	*slot = kl_pick_slot(count);
	key->slot = *slot;
	slot_val = bpf_map_lookup_elem(&KL_LB4_SVC_MAP, key);
	return slot_val ? slot_val->backend_id : 0;
}

#endif /* KL_LB4_SELECT_H */
