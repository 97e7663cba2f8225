// kinglet endpoint list [--api-socket <path>] [--json]
import type { EndpointInfo } from '../../api/types.ts';
import type { Io } from '../io.ts';
import { runAgentRead } from '../agent-read.ts';
import { renderEndpoints } from '../render/endpoints.ts';

export function run(args: string[], io: Io): Promise<number> {
  return runAgentRead<EndpointInfo[]>(args, io, {
    usage: 'usage: kinglet endpoint list [--api-socket <path>] [--json]\n\nThe pod endpoints of this node: addresses, host interface, attached programs.\n',
    path: '/v1/endpoints',
    render: renderEndpoints,
  });
}
