/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IPv4 packets in tc programs: parse the headers the datapath needs into a
 * small struct, and rewrite addresses, ports, TTL and MACs with the checksum
 * helpers (which also handle CHECKSUM_PARTIAL skbs from veths).
 * Ethernet framing is assumed (pod veths; native devices of type ether).
 */
#ifndef KL_PKT4_H
#define KL_PKT4_H

#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "kinglet.h"

#define KL_IP_OFF        ETH_HLEN
#define KL_IP_CSUM_OFF   (ETH_HLEN + offsetof(struct iphdr, check))
#define KL_IP_SADDR_OFF  (ETH_HLEN + offsetof(struct iphdr, saddr))
#define KL_IP_DADDR_OFF  (ETH_HLEN + offsetof(struct iphdr, daddr))
#define KL_IP_TTL_OFF    (ETH_HLEN + offsetof(struct iphdr, ttl))

#define KL_ICMP_ECHOREPLY 0
#define KL_ICMP_ECHO      8

#define KL_TCP_FIN 0x01
#define KL_TCP_SYN 0x02
#define KL_TCP_RST 0x04
#define KL_TCP_ACK 0x10

/* Parsed headers (internal: not in kinglet.h, no TypeScript twin). */
struct pkt4 {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;       /* TCP/UDP source port; ICMP echo request: the identifier */
	__be16 dport;       /* TCP/UDP destination port; ICMP echo reply: the identifier */
	__u32  l4off;       /* offset of the L4 header from the start of the frame */
	__u8   proto;
	__u8   ttl;
	__u8   tcp_flags;
	__u8   frag;        /* a non-first fragment: no L4 header */
	__u8   icmp_type;
	__u8   has_ports;   /* sport/dport are meaningful (TCP, UDP, ICMP echo) */
	__u8   pad[2];
};

/* 0 when parsed; -1 when the IPv4 header is truncated or malformed. */
static __always_inline int kl_parse4(struct __sk_buff *ctx, struct pkt4 *p)
{
	struct iphdr ip;

	if (bpf_skb_load_bytes(ctx, KL_IP_OFF, &ip, sizeof(ip)) < 0)
		return -1;
	if (ip.version != 4 || ip.ihl < 5)
		return -1;
	p->saddr = ip.saddr;
	p->daddr = ip.daddr;
	p->proto = ip.protocol;
	p->ttl = ip.ttl;
	p->l4off = KL_IP_OFF + ip.ihl * 4;
	p->sport = 0;
	p->dport = 0;
	p->tcp_flags = 0;
	p->icmp_type = 0;
	p->has_ports = 0;
	p->frag = (ip.frag_off & bpf_htons(0x1fff)) != 0;
	if (p->frag)
		return 0;

	if (ip.protocol == IPPROTO_TCP) {
		__u8 h[14];

		if (bpf_skb_load_bytes(ctx, p->l4off, h, sizeof(h)) < 0)
			return -1;
		__builtin_memcpy(&p->sport, &h[0], 2);
		__builtin_memcpy(&p->dport, &h[2], 2);
		p->tcp_flags = h[13];
		p->has_ports = 1;
	} else if (ip.protocol == IPPROTO_UDP) {
		__be16 ports[2];

		if (bpf_skb_load_bytes(ctx, p->l4off, ports, sizeof(ports)) < 0)
			return -1;
		p->sport = ports[0];
		p->dport = ports[1];
		p->has_ports = 1;
	} else if (ip.protocol == IPPROTO_ICMP) {
		__u8 h[8];
		__be16 id;

		if (bpf_skb_load_bytes(ctx, p->l4off, h, sizeof(h)) < 0)
			return -1;
		p->icmp_type = h[0];
		__builtin_memcpy(&id, &h[4], 2);
		if (h[0] == KL_ICMP_ECHO) {
			p->sport = id;
			p->has_ports = 1;
		} else if (h[0] == KL_ICMP_ECHOREPLY) {
			p->dport = id;
			p->has_ports = 1;
		}
	}
	return 0;
}

/* Offset of the L4 checksum and the csum-helper flags, or -1 when there is none to fix. */
static __always_inline int kl_l4_csum(const struct pkt4 *p, __u32 *off, __u64 *flags)
{
	if (p->frag)
		return -1;
	if (p->proto == IPPROTO_TCP) {
		*off = p->l4off + 16;
		*flags = 0;
		return 0;
	}
	if (p->proto == IPPROTO_UDP) {
		*off = p->l4off + 6;
		*flags = BPF_F_MARK_MANGLED_0;
		return 0;
	}
	if (p->proto == IPPROTO_ICMP) {
		*off = p->l4off + 2;
		*flags = 0;
		return 0;
	}
	return -1;
}

/* Rewrite the source (dst = 0) or destination (dst = 1) address; 0 or -1. */
static __always_inline int kl_set_addr4(struct __sk_buff *ctx, struct pkt4 *p, int dst, __be32 addr)
{
	__be32 old = dst ? p->daddr : p->saddr;
	__u32 csum_off;
	__u64 flags;

	if (old == addr)
		return 0;
	/* ICMP's checksum has no pseudo header; TCP's and UDP's do. */
	if (p->proto != IPPROTO_ICMP && kl_l4_csum(p, &csum_off, &flags) == 0) {
		if (bpf_l4_csum_replace(ctx, csum_off, old, addr, flags | BPF_F_PSEUDO_HDR | sizeof(addr)) < 0)
			return -1;
	}
	if (bpf_l3_csum_replace(ctx, KL_IP_CSUM_OFF, old, addr, sizeof(addr)) < 0)
		return -1;
	if (bpf_skb_store_bytes(ctx, dst ? KL_IP_DADDR_OFF : KL_IP_SADDR_OFF, &addr, sizeof(addr), 0) < 0)
		return -1;
	if (dst)
		p->daddr = addr;
	else
		p->saddr = addr;
	return 0;
}

/*
 * Rewrite the source (dst = 0) or destination (dst = 1) port, or for ICMP
 * echo the identifier (whichever side holds it); 0 or -1.
 */
static __always_inline int kl_set_port4(struct __sk_buff *ctx, struct pkt4 *p, int dst, __be16 port)
{
	__be16 old = dst ? p->dport : p->sport;
	__u32 csum_off, off;
	__u64 flags;

	if (old == port)
		return 0;
	if (kl_l4_csum(p, &csum_off, &flags) < 0 || !p->has_ports)
		return -1;
	if (p->proto == IPPROTO_ICMP)
		off = p->l4off + 4;
	else
		off = p->l4off + (dst ? 2 : 0);
	if (bpf_l4_csum_replace(ctx, csum_off, old, port, flags | sizeof(port)) < 0)
		return -1;
	if (bpf_skb_store_bytes(ctx, off, &port, sizeof(port), 0) < 0)
		return -1;
	if (dst)
		p->dport = port;
	else
		p->sport = port;
	return 0;
}

/* Decrement the TTL (forwarding done in BPF); -1 when it would reach 0 or the write fails. */
static __always_inline int kl_ttl_dec(struct __sk_buff *ctx, struct pkt4 *p)
{
	__u8 ttl = p->ttl;
	__be16 old, new;

	if (ttl <= 1)
		return -1;
	/* TTL and protocol share one 16-bit word of the header checksum. */
	old = bpf_htons(((__u16)ttl << 8) | p->proto);
	new = bpf_htons(((__u16)(ttl - 1) << 8) | p->proto);
	if (bpf_l3_csum_replace(ctx, KL_IP_CSUM_OFF, old, new, sizeof(new)) < 0)
		return -1;
	ttl--;
	if (bpf_skb_store_bytes(ctx, KL_IP_TTL_OFF, &ttl, 1, 0) < 0)
		return -1;
	p->ttl = ttl;
	return 0;
}

static __always_inline int kl_set_macs(struct __sk_buff *ctx, const __u8 *dst, const __u8 *src)
{
	if (bpf_skb_store_bytes(ctx, 0, dst, ETH_ALEN, 0) < 0)
		return -1;
	if (bpf_skb_store_bytes(ctx, ETH_ALEN, src, ETH_ALEN, 0) < 0)
		return -1;
	return 0;
}

static __always_inline int kl_in_net(__be32 addr, __be32 net, __be32 mask)
{
	return (addr & mask) == net;
}

#endif /* KL_PKT4_H */
