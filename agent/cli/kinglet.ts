#!/usr/bin/env node
// The `kinglet` command: one CLI in front of the installer, the kernel
// checks, the agent and its read commands.
import { main } from './main.ts';

process.exitCode = await main(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
});
