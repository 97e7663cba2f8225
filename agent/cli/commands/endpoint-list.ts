// kinglet endpoint list [--api-socket <path>] [--json]
import { parseArgs } from 'node:util';
import { apiRequest, ApiClientError } from '../../api/client.ts';
import { DEFAULT_API_SOCKET, type EndpointInfo } from '../../api/types.ts';
import { CommandError, printJson, type Io } from '../io.ts';
import { renderEndpoints } from '../render/endpoints.ts';

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
    io.out('usage: kinglet endpoint list [--api-socket <path>] [--json]\n\nThe pod endpoints of this node: addresses, host interface, attached programs.\n');
    return 0;
  }
  let eps: EndpointInfo[];
  try {
    eps = await apiRequest<EndpointInfo[]>(values['api-socket'], 'GET', '/v1/endpoints');
  } catch (e) {
    if (e instanceof ApiClientError) throw new CommandError(e.hint ? `${e.message} (${e.hint})` : e.message, { cause: e });
    throw e;
  }
  if (values.json) printJson(io, eps);
  else io.out(renderEndpoints(eps));
  return 0;
}
