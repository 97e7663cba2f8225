/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The socket-LB maps. Included once per object. No pinning attribute: the
 * agent's loader pins every map by its name under <bpf-root>/maps and reuses
 * the pinned ones on restart.
 *
 * Backends and rev-NAT entries are keyed by small dense ids (handed out
 * lowest first from 1), so they live in arrays: a write is a copy, with no
 * allocation and no hashing (several times cheaper than a hash map insert
 * when 100k backends are programmed at once), and the memory is a fixed
 * max_entries x value size. Id 0 is never used. An id that is not in use
 * holds zeros: kl_lb4_backend_ok / kl_lb6_backend_ok tell the two apart
 * (a backend's port is never 0); a zeroed rev-NAT entry matches no socket.
 */
#ifndef KL_LB_MAPS_H
#define KL_LB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "kinglet.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, KL_LB_SVC_MAX);
	__type(key, struct kl_lb4_key);
	__type(value, struct kl_lb_svc);
} KL_LB4_SVC_MAP SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, KL_LB_SVC_MAX);
	__type(key, struct kl_lb6_key);
	__type(value, struct kl_lb_svc);
} KL_LB6_SVC_MAP SEC(".maps");

/* Backend slots: index -> backend id, a contiguous range per frontend. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KL_LB_SLOT_MAX);
	__type(key, __u32);
	__type(value, __u32);
} KL_LB4_SLOT_MAP SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KL_LB_SLOT_MAX);
	__type(key, __u32);
	__type(value, __u32);
} KL_LB6_SLOT_MAP SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KL_LB_BE_MAX);
	__type(key, __u32);
	__type(value, struct kl_lb4_backend);
} KL_LB4_BE_MAP SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KL_LB_BE_MAX);
	__type(key, __u32);
	__type(value, struct kl_lb6_backend);
} KL_LB6_BE_MAP SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KL_LB_RNAT_MAX);
	__type(key, __u32);
	__type(value, struct kl_lb4_rnat);
} KL_LB4_RNAT_MAP SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KL_LB_RNAT_MAX);
	__type(key, __u32);
	__type(value, struct kl_lb6_rnat);
} KL_LB6_RNAT_MAP SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KL_LB_RSK_MAX);
	__type(key, struct kl_lb4_rsk_key);
	__type(value, struct kl_lb4_rsk);
} KL_LB4_RSK_MAP SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KL_LB_RSK_MAX);
	__type(key, struct kl_lb6_rsk_key);
	__type(value, struct kl_lb6_rsk);
} KL_LB6_RSK_MAP SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KL_LB_AFF_MAX);
	__type(key, struct kl_lb_aff_key);
	__type(value, struct kl_lb_aff);
} KL_LB_AFF_MAP SEC(".maps");

/* A backend as looked up in its array: present, and not a zeroed (unused) id. */
static __always_inline int kl_lb4_backend_ok(const struct kl_lb4_backend *be)
{
	return be && be->port;
}

static __always_inline int kl_lb6_backend_ok(const struct kl_lb6_backend *be)
{
	return be && be->port;
}

#endif /* KL_LB_MAPS_H */
