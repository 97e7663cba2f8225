// `kinglet status` in the shape `cilium status` users know: one line per
// concern, details indented under it.
import type { AgentStatus } from '../../api/types.ts';

const ok = (b: boolean) => (b ? 'OK' : 'Not OK');

function since(iso: string | undefined, now: Date): string {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((now.getTime() - new Date(iso).getTime()) / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

export function renderStatus(st: AgentStatus, now: Date = new Date()): string {
  const out: string[] = [];
  const line = (k: string, v: string) => out.push(`${(k + ':').padEnd(24)}${v}`);
  line('Agent', `${ok(st.healthy)}   kinglet ${st.version} on node ${st.node.name}, up ${st.uptimeSeconds}s`);
  for (const p of st.problems) out.push(`${''.padEnd(24)}! ${p}`);
  const src = st.source;
  const srcName = src.kind === 'kube' ? 'Kubernetes' : `Source (${src.kind})`;
  const version = typeof src.version === 'string' ? ` [${src.version}]` : '';
  line(srcName, `${ok(src.synced)}   ${src.endpoint}${version}, last sync ${since(src.lastSync, now)}`);
  if (typeof src.endpointReason === 'string') out.push(`${''.padEnd(24)}(${src.endpointReason})`);
  if (src.lastError) out.push(`${''.padEnd(24)}last error: ${src.lastError}`);
  if (src.malformed) out.push(`${''.padEnd(24)}${src.malformed} malformed object(s) skipped`);
  line('Capabilities', st.capabilities.length ? st.capabilities.join(', ') : 'none');
  const kpr = st.kubeProxyReplacement;
  line('KubeProxyReplacement', `${kpr.mode}   [${kpr.features.filter((f) => f.enabled).map((f) => f.name).join(', ')}]`);
  for (const f of kpr.features) out.push(`${''.padEnd(24)}- ${f.name}: ${f.enabled ? 'yes' : 'no'} (${f.detail})`);
  const dp = st.datapath;
  line('BPF programs', `${dp.programs.length} attached to ${dp.cgroup} (${dp.object || 'none'})`);
  for (const p of dp.programs) out.push(`${''.padEnd(24)}- ${p.name.padEnd(20)} ${p.attach.padEnd(22)} prog ${p.progId}, link ${p.linkId}`);
  line('BPF maps', `pinned under ${dp.bpfRoot}`);
  for (const m of dp.maps) {
    const pct = m.max ? ((100 * m.entries) / m.max).toFixed(2) : '0';
    out.push(`${''.padEnd(24)}- ${m.name.padEnd(16)} ${String(m.entries).padStart(7)}/${m.max} (${pct}%)`);
  }
  const sv = st.services;
  const la = sv.lastApply ? `, last change ${since(sv.lastApply.at, now)} (+${sv.lastApply.added} ~${sv.lastApply.updated} -${sv.lastApply.deleted} in ${sv.lastApply.durationMs} ms)` : '';
  line('Services', `${sv.frontends} frontends, ${sv.backends} backends${la}`);
  const rs = sv.lastResync;
  if (rs) {
    const what = rs.mode === 'full'
      ? 'maps re-read after a failed write'
      : rs.added + rs.updated + rs.deleted > 0
        ? `drift repaired (+${rs.added} ~${rs.updated} -${rs.deleted})`
        : 'no drift';
    out.push(`${''.padEnd(24)}last drift check ${since(rs.at, now)}: ${what}, ${rs.scanned} entries compared in ${rs.durationMs} ms`);
  }
  line('Controllers', `${st.controllers.filter((c) => !c.lastError).length}/${st.controllers.length} healthy`);
  for (const c of st.controllers) {
    out.push(`${''.padEnd(24)}- ${c.name}: ${c.runs} runs, ${c.failures} failures, last ${since(c.lastRun, now)}${c.lastError ? `, error: ${c.lastError}` : ''}`);
  }
  line('IPAM', st.ipam ? st.ipam.podCIDRs.join(', ') : 'no pod range yet (pod networking not configured)');
  const pn = st.podNetwork;
  if (pn) {
    line('Endpoints', `${pn.endpoints} (local delivery: ${pn.redirect === 'stack' ? 'kernel stack' : `bpf_redirect_${pn.redirect}`})`);
    const m = pn.masquerade;
    line('Masquerade', m.enabled ? `BPF   ${m.podCIDR} -> ${m.nodeIP} on ${m.device}, except to ${m.clusterCIDR}${m.ports ? `, ports ${m.ports}` : ''}` : `Disabled   (${m.reason ?? 'off'})`);
    for (const p of pn.tc) out.push(`${''.padEnd(24)}- ${p.program.padEnd(20)} tc ${p.direction.padEnd(8)} ${p.device}, prog ${p.progId}`);
    line('Node routes', pn.routes.reason ? `unmanaged (${pn.routes.reason})` : `${pn.routes.installed.length} installed`);
    for (const r of pn.routes.installed) out.push(`${''.padEnd(24)}- ${r}`);
    for (const e of pn.routes.errors) out.push(`${''.padEnd(24)}! ${e}`);
    line('IP forwarding', pn.ipForward.value === '1' ? 'on' : `off${pn.ipForward.reason ? ` (${pn.ipForward.reason})` : ''}`);
    if (pn.drops.length) line('Drops', pn.drops.map((d) => `${d.reason}: ${d.count}`).join(', '));
  }
  return out.join('\n') + '\n';
}
