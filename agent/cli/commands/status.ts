// kinglet status [--api-socket <path>] [--json]: the agent's health, exit 1 when unhealthy.
import type { AgentStatus } from '../../api/types.ts';
import type { Io } from '../io.ts';
import { runAgentRead } from '../agent-read.ts';
import { renderStatus } from '../render/status.ts';

export function run(args: string[], io: Io): Promise<number> {
  return runAgentRead<AgentStatus>(args, io, {
    usage:
      "usage: kinglet status [--api-socket <path>] [--json]\n\nThe agent's health, its Kubernetes connection, datapath modes, programs, maps and controllers.\nExit status 1 when the agent is unhealthy or unreachable.\n",
    path: '/v1/status',
    render: (st) => renderStatus(st),
    exitCode: (st) => (st.healthy ? 0 : 1),
  });
}
