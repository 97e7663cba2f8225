// Child for test/integration/agent/cni/rtnl.test.ts: runs plumbing's
// setupHost + setupPod the way the agent does (rtnetlink, `ip` as the
// fallback) inside the network namespace it was started in (`ip netns exec`),
// so the host side lands there and never in the host's own namespace.
// argv[2]: the VethSpec as JSON. Prints {"fallbacks": [...]} on stdout.
import { setupHost, setupPod, useRtnl, type VethSpec } from '../../agent/cni/plumbing.ts';
import { setupHostRtnl, setupPodRtnl } from '../../agent/cni/rtnl.ts';

const spec = JSON.parse(process.argv[2]!) as VethSpec;
const fallbacks: string[] = [];
useRtnl({ host: setupHostRtnl, pod: setupPodRtnl, fallback: (side, _s, err) => fallbacks.push(`${side}: ${err.message}`) });
await setupHost(spec);
await setupPod(spec);
process.stdout.write(JSON.stringify({ fallbacks }));
