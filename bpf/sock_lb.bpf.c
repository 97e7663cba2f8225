// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Socket-level load balancing (kube-proxy replacement): a ClusterIP is
 * translated to a backend once, at connect() (or per datagram at sendmsg()
 * for unconnected UDP), and shown back as the ClusterIP at recvmsg() and
 * getpeername(). Entry points only; the logic is in lib/lb4.h and lib/lb6.h,
 * the backend pick (shared with the tc LB) in lib/lb_pick.h.
 *
 * Kernel floor per hook: connect4/6 4.17, sendmsg4/6 4.18, recvmsg4/6 5.2,
 * getpeername4/6 5.8. See lib/lb_common.h for the optional features.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "kinglet.h"
#include "lb4.h"
#include "lb6.h"

SEC("cgroup/connect4")
int kl_sock4_connect(struct bpf_sock_addr *ctx)
{
	return lb4_sock_fwd(ctx);
}

SEC("cgroup/sendmsg4")
int kl_sock4_sendmsg(struct bpf_sock_addr *ctx)
{
	return lb4_sock_fwd(ctx);
}

SEC("cgroup/recvmsg4")
int kl_sock4_recvmsg(struct bpf_sock_addr *ctx)
{
	return lb4_sock_rev(ctx);
}

SEC("cgroup/getpeername4")
int kl_sock4_getpeer(struct bpf_sock_addr *ctx)
{
	return lb4_sock_rev(ctx);
}

SEC("cgroup/connect6")
int kl_sock6_connect(struct bpf_sock_addr *ctx)
{
	return lb6_sock_fwd(ctx);
}

SEC("cgroup/sendmsg6")
int kl_sock6_sendmsg(struct bpf_sock_addr *ctx)
{
	return lb6_sock_fwd(ctx);
}

SEC("cgroup/recvmsg6")
int kl_sock6_recvmsg(struct bpf_sock_addr *ctx)
{
	return lb6_sock_rev(ctx);
}

SEC("cgroup/getpeername6")
int kl_sock6_getpeer(struct bpf_sock_addr *ctx)
{
	return lb6_sock_rev(ctx);
}

char _license[] SEC("license") = "Dual BSD/GPL";
