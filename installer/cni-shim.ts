// The native kinglet-cni shim in the bundle (agent/cni/shim, built by
// installer/bundle.ts where a C compiler is available): whether it runs on
// this machine. The agent step installs it as `kinglet-cni` with the Node
// plugin beside it as `kinglet-cni-node` (its fallback when the agent is
// down); without it `kinglet-cni` is the Node plugin itself, and every CNI
// call pays Node's start-up.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const CNI_SHIM_IN_BUNDLE = 'agent/cni/shim/build/kinglet-cni';

/** ELF e_machine for each os.machine() name. */
const ELF_MACHINE: Record<string, number> = { x86_64: 62, aarch64: 183, armv7l: 40, armv6l: 40, riscv64: 243, s390x: 22, ppc64le: 21, ppc64: 21 };

/** True when the bundle holds the shim as an ELF executable for `arch` (os.machine()). */
export function cniShimUsable(bundleDir: string, arch: string): boolean {
  let head: Buffer;
  try {
    head = readFileSync(join(bundleDir, CNI_SHIM_IN_BUNDLE)).subarray(0, 20);
  } catch {
    return false;
  }
  if (head.length < 20 || head.readUInt32BE(0) !== 0x7f454c46) return false;
  const machine = head[5] === 2 ? head.readUInt16BE(18) : head.readUInt16LE(18);
  return machine === ELF_MACHINE[arch];
}
