// The socket LB opened on a scratch bpffs, attached to a cgroup of the
// caller's own (benchmarks, integration tests). At teardown it is closed and
// its pins removed, before the cgroup and the mount go.
import { LbDatapath } from '../../agent/datapath/lb.ts';
import { cleanup } from '../../agent/datapath/loader.ts';
import { scratchBpffs, testCgroup, type Teardownable } from './sandbox.ts';

export interface ScratchLb {
  lb: LbDatapath;
  bpfRoot: string;
  cgroup: string;
}

/** Pins at the root of a fresh scratch mount; the cgroup's name starts with `cgroupPrefix`. */
export async function scratchLb(t: Teardownable, cgroupPrefix?: string): Promise<ScratchLb> {
  const bpfRoot = await scratchBpffs(t);
  const cgroup = await testCgroup(t, cgroupPrefix);
  const lb = LbDatapath.open({ bpfRoot, cgroup });
  t.teardown(() => {
    lb.close();
    cleanup(bpfRoot);
  });
  return { lb, bpfRoot, cgroup };
}
