// kinglet status [--api-socket <path>] [--json]: the agent's health, exit 1 when unhealthy.
import { parseArgs } from 'node:util';
import { apiRequest, ApiClientError } from '../../api/client.ts';
import { DEFAULT_API_SOCKET, type AgentStatus } from '../../api/types.ts';
import { CommandError, printJson, type Io } from '../io.ts';
import { renderStatus } from '../render/status.ts';

export async function run(args: string[], io: Io): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      'api-socket': { type: 'string', default: DEFAULT_API_SOCKET },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    io.out('usage: kinglet status [--api-socket <path>] [--json]\n\nThe agent\'s health, its Kubernetes connection, datapath modes, programs, maps and controllers.\nExit status 1 when the agent is unhealthy or unreachable.\n');
    return 0;
  }
  let st: AgentStatus;
  try {
    st = await apiRequest<AgentStatus>(values['api-socket'], 'GET', '/v1/status');
  } catch (e) {
    if (e instanceof ApiClientError) throw new CommandError(e.message, { cause: e });
    throw e;
  }
  if (values.json) printJson(io, st);
  else io.out(renderStatus(st));
  return st.healthy ? 0 : 1;
}
