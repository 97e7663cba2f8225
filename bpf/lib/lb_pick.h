/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Backend selection, one for both families and both LBs: the socket LB
 * (lb4.h, lb6.h) at connect()/sendmsg(), and the per-packet tc LB (lb4_tc.h)
 * for a flow that has no backend yet. The backend is the one the client's
 * sessionAffinity record names, while the record is live and its slot still
 * holds that backend; otherwise the backend of a slot picked uniformly at
 * random. With affinity the choice is recorded (again), so the record lives
 * as long as the client keeps coming back within the timeout. Who the client
 * is belongs to the caller: the socket's netns cookie (0 node-wide, without
 * bpf_get_netns_cookie) in the socket LB, the marked client address in tc.
 */
#ifndef KL_LB_PICK_H
#define KL_LB_PICK_H

#include "lb_common.h"

#define KL_NSEC_PER_SEC 1000000000ULL

/*
 * A live affinity record for (client, frontend), or NULL. Live: not older
 * than the frontend's timeout and naming a slot within the current count (the
 * caller still checks the slot holds the same backend).
 */
static __always_inline struct kl_lb_aff *
kl_aff_lookup(const struct kl_lb_aff_key *key, const struct kl_lb_svc *front, __u64 now)
{
	struct kl_lb_aff *aff = bpf_map_lookup_elem(&KL_LB_AFF_MAP, key);

	if (!aff)
		return NULL;
	if (now - aff->last_used_ns > (__u64)front->affinity_timeout * KL_NSEC_PER_SEC)
		return NULL;
	if (aff->slot == 0 || aff->slot > front->count)
		return NULL;
	return aff;
}

static __always_inline void
kl_aff_store(const struct kl_lb_aff_key *key, __u32 backend_id, __u16 slot, __u64 now)
{
	struct kl_lb_aff val = {
		.last_used_ns = now,
		.backend_id = backend_id,
		.slot = slot,
	};

	bpf_map_update_elem(&KL_LB_AFF_MAP, key, &val, BPF_ANY);
}

/* Uniform choice of a slot in 1..count. */
static __always_inline __u16 kl_pick_slot(__u16 count)
{
	return (__u16)(bpf_get_prandom_u32() % count) + 1;
}

/* The backend id in slot `slot` (1..count) of the frontend, from the family's slot map; 0 for none. */
static __always_inline __u32 kl_slot_backend(void *slots, const struct kl_lb_svc *front, __u16 slot)
{
	__u32 idx = front->slot_base + slot - 1;
	__u32 *id = bpf_map_lookup_elem(slots, &idx);

	return id ? *id : 0;
}

/* A pick under way: what recording it takes once its backend checks out. */
struct kl_lb_pick {
	struct kl_lb_aff_key aff_key;
	__u64 now;
	__u16 slot;
	__u8 affinity;
};

/*
 * The backend id for `client` among the frontend's `count` (> 0) slots in
 * `slots`, 0 for none (a half-written state); `client` and `now` count only
 * with affinity. *pk carries what kl_pick_done needs.
 */
static __always_inline __u32
kl_pick_id(struct kl_lb_pick *pk, void *slots, const struct kl_lb_svc *front, __u16 count, __u64 client, __u64 now)
{
	struct kl_lb_aff *aff;
	__u32 id;

	pk->aff_key.client = client;
	pk->aff_key.rev_nat_id = front->rev_nat_id;
	pk->aff_key.pad = 0;
	pk->now = now;
	pk->affinity = front->flags & KL_SVC_F_AFFINITY;
	if (pk->affinity) {
		aff = kl_aff_lookup(&pk->aff_key, front, now);
		if (aff) {
			id = kl_slot_backend(slots, front, aff->slot);
			if (id && id == aff->backend_id) {
				pk->slot = aff->slot;
				return id;
			}
		}
	}
	pk->slot = kl_pick_slot(count);
	return kl_slot_backend(slots, front, pk->slot);
}

/* The pick's backend `id` exists: with affinity, record it for the client. */
static __always_inline void kl_pick_done(const struct kl_lb_pick *pk, __u32 id)
{
	if (pk->affinity)
		kl_aff_store(&pk->aff_key, id, pk->slot, pk->now);
}

/*
 * The IPv4 backend for a new connection or flow of `client` to `front`,
 * which has `count` (> 0) slots; `client` and `now` count only for a
 * frontend with affinity. NULL when a slot or backend is missing (a
 * half-written state the agent's write order rules out); else the backend,
 * with its id in *backend_id.
 */
static __always_inline struct kl_lb4_backend *
lb4_pick(const struct kl_lb_svc *front, __u16 count, __u64 client, __u64 now, __u32 *backend_id)
{
	struct kl_lb_pick pk;
	struct kl_lb4_backend *be;
	__u32 id = kl_pick_id(&pk, &KL_LB4_SLOT_MAP, front, count, client, now);

	if (!id)
		return NULL;
	be = bpf_map_lookup_elem(&KL_LB4_BE_MAP, &id);
	if (!kl_lb4_backend_ok(be))
		return NULL;
	kl_pick_done(&pk, id);
	*backend_id = id;
	return be;
}

/* As lb4_pick, for an IPv6 frontend. */
static __always_inline struct kl_lb6_backend *
lb6_pick(const struct kl_lb_svc *front, __u16 count, __u64 client, __u64 now, __u32 *backend_id)
{
	struct kl_lb_pick pk;
	struct kl_lb6_backend *be;
	__u32 id = kl_pick_id(&pk, &KL_LB6_SLOT_MAP, front, count, client, now);

	if (!id)
		return NULL;
	be = bpf_map_lookup_elem(&KL_LB6_BE_MAP, &id);
	if (!kl_lb6_backend_ok(be))
		return NULL;
	kl_pick_done(&pk, id);
	*backend_id = id;
	return be;
}

#endif /* KL_LB_PICK_H */
