// kinglet service list [--api-socket <path>] [--json]
import { parseArgs } from 'node:util';
import { apiRequest, ApiClientError } from '../../api/client.ts';
import { DEFAULT_API_SOCKET, type ServiceEntry } from '../../api/types.ts';
import { CommandError, printJson, type Io } from '../io.ts';
import { renderServices } from '../render/services.ts';

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
    io.out('usage: kinglet service list [--api-socket <path>] [--json]\n\nThe frontends the agent has programmed and their backends.\n');
    return 0;
  }
  let services: ServiceEntry[];
  try {
    services = await apiRequest<ServiceEntry[]>(values['api-socket'], 'GET', '/v1/services');
  } catch (e) {
    if (e instanceof ApiClientError) throw new CommandError(e.hint ? `${e.message} (${e.hint})` : e.message, { cause: e });
    throw e;
  }
  if (values.json) printJson(io, services);
  else io.out(renderServices(services));
  return 0;
}
