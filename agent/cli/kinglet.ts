#!/usr/bin/env node
// The `kinglet` command: one CLI in front of the installer, the kernel
// checks, the agent and its read commands.
//
// Node strips the TypeScript types itself; its compile cache keeps that work
// (and the ~35 MB the type stripper costs in memory) off every start after the
// first. KINGLET_COMPILE_CACHE=<dir> moves the cache, "off" disables it. The
// cache must be on before anything else loads, hence the dynamic import. This
// file itself is stripped before it can turn the cache on: the agent's
// service turns it on earlier, with a preload (AGENT_NODE_FLAGS in
// installer/render.ts).
import { enableCompileCache } from 'node:module';

const cacheDir = process.env.KINGLET_COMPILE_CACHE;
if (cacheDir !== 'off') {
  try {
    enableCompileCache(cacheDir || undefined);
  } catch {
    // an unwritable cache only costs start-up time
  }
}
const { main } = await import('./main.ts');
process.exitCode = await main(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
});
