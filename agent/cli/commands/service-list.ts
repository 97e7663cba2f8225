// kinglet service list [--api-socket <path>] [--json]
import type { ServiceEntry } from '../../api/types.ts';
import type { Io } from '../io.ts';
import { runAgentRead } from '../agent-read.ts';
import { renderServices } from '../render/services.ts';

export function run(args: string[], io: Io): Promise<number> {
  return runAgentRead<ServiceEntry[]>(args, io, {
    usage: 'usage: kinglet service list [--api-socket <path>] [--json]\n\nThe frontends the agent has programmed and their backends.\n',
    path: '/v1/services',
    render: renderServices,
  });
}
