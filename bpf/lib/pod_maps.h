/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Maps of the pod datapath. Like the socket-LB maps, no pinning attribute:
 * the loader pins each by name under <bpf-root>/maps and reuses the pins, so
 * conntrack and masquerade state survive an agent restart.
 */
#ifndef KL_POD_MAPS_H
#define KL_POD_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "kinglet.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, KL_EP_MAX);
	__type(key, __u32);                     /* pod address, network order */
	__type(value, struct kl_endpoint);
} KL_EP4_MAP SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KL_CT_MAX);
	__type(key, struct kl_ct4_key);
	__type(value, struct kl_ct4_entry);
} KL_CT4_MAP SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KL_SNAT_MAX);
	__type(key, struct kl_snat4_key);
	__type(value, struct kl_snat4_entry);
} KL_SNAT4_MAP SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kl_cfg);
} KL_CFG_MAP SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KL_DROP_MAX);
	__type(key, __u32);
	__type(value, __u64);
} KL_DROP_MAP SEC(".maps");

static __always_inline const struct kl_cfg *kl_cfg(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&KL_CFG_MAP, &zero);
}

#endif /* KL_POD_MAPS_H */
