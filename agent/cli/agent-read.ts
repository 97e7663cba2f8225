// The shape shared by the read commands that ask the agent over its socket:
// --api-socket, --json, --help; an unreachable agent is a CommandError with
// the agent client's advice.
import { parseArgs } from 'node:util';
import { apiRequest, ApiClientError } from '../api/client.ts';
import { DEFAULT_API_SOCKET } from '../api/types.ts';
import { CommandError, printJson, type Io } from './io.ts';

export interface AgentReadCommand<T> {
  usage: string;
  path: string;
  render: (value: T) => string;
  /** Exit status for a value that was read (default 0). */
  exitCode?: (value: T) => number;
}

export async function runAgentRead<T>(args: string[], io: Io, cmd: AgentReadCommand<T>): Promise<number> {
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
    io.out(cmd.usage);
    return 0;
  }
  let value: T;
  try {
    value = await apiRequest<T>(values['api-socket'], 'GET', cmd.path);
  } catch (e) {
    if (e instanceof ApiClientError) throw new CommandError(e.hint ? `${e.message} (${e.hint})` : e.message, { cause: e });
    throw e;
  }
  if (values.json) printJson(io, value);
  else io.out(cmd.render(value));
  return cmd.exitCode?.(value) ?? 0;
}
