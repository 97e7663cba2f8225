// `kinglet kernel check`: does this kernel (or the one named by flags) meet
// the minimum? Exit 0 yes, 1 no, 2 for input that is not a kernel version.
import { checkKernel, MINIMUM_KERNEL, type KernelCheck } from '../../../kernel/check.ts';
import { readHostKernel, readHostOsRelease, readOsReleaseFile } from '../../../kernel/host.ts';
import { OsReleaseError, type OsRelease } from '../../../kernel/os-release.ts';
import { KernelVersionError, type VersionInput } from '../../../kernel/version.ts';
import { commandFlags, printJson, UsageError, type Io } from '../io.ts';

const HELP = `usage: kinglet kernel check [--release <uname -r>] [--version <uname -v | /proc/version line>]
                            [--version-signature <line>] [--os-release <file>] [--json]

Checks that the kernel meets kinglet's minimum, ${MINIMUM_KERNEL}, by its effective
upstream version (Debian's uname -v, Ubuntu's /proc/version_signature, vendor
kernels with backports counted as their upstream base). Without flags it reads
the running host.

  --release <s>            a kernel release, as printed by uname -r
  --version <s>            uname -v, or a whole /proc/version line
  --version-signature <s>  Ubuntu's /proc/version_signature line
  --os-release <file>      the distribution's os-release (or redhat-release) file
  --json                   print the result as JSON

Exit status: 0 meets the minimum, 1 below it, 2 bad input.
`;

export function formatHuman(result: KernelCheck): string {
  let text = `${result.reason}\n`;
  if (!result.ok && result.remedy) text += `remedy: ${result.remedy.summary}\n`;
  return text;
}

export async function run(args: string[], io: Io): Promise<number> {
  const values = commandFlags(args, {
    release: { type: 'string' },
    version: { type: 'string' },
    'version-signature': { type: 'string' },
    'os-release': { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  }, HELP);
  if (values.help) {
    io.out(HELP);
    return 0;
  }

  const fromFlags =
    values.release !== undefined || values.version !== undefined || values['version-signature'] !== undefined;
  let kernel: VersionInput;
  if (fromFlags) {
    let release = values.release;
    if (release === undefined && values.version !== undefined) {
      release = /^\s*Linux version (\S+)/.exec(values.version)?.[1];
    }
    if (release === undefined) {
      throw new UsageError('--release <uname -r> is needed (unless --version is a whole /proc/version line)');
    }
    kernel = { release };
    if (values.version !== undefined) kernel.version = values.version;
    if (values['version-signature'] !== undefined) kernel.versionSignature = values['version-signature'];
  } else {
    kernel = await readHostKernel();
  }

  let osRelease: OsRelease | undefined;
  try {
    if (values['os-release'] !== undefined) osRelease = await readOsReleaseFile(values['os-release']);
    else if (!fromFlags) osRelease = await readHostOsRelease();
  } catch (e) {
    if (e instanceof OsReleaseError) throw new UsageError(`--os-release: ${e.message}`, { cause: e });
    throw e;
  }

  let result: KernelCheck;
  try {
    result = checkKernel(osRelease ? { ...kernel, osRelease } : kernel);
  } catch (e) {
    if (e instanceof KernelVersionError) throw new UsageError(e.message, { cause: e });
    throw e;
  }

  if (values.json) printJson(io, result);
  else io.out(formatHuman(result));
  return result.ok ? 0 : 1;
}
