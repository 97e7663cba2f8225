// A throwaway PKI for tests that speak TLS: a CA, a server certificate for
// 127.0.0.1/localhost, a client certificate signed by the CA, and a second,
// unrelated CA (to prove that a wrong CA is refused). Made with the openssl CLI
// in a directory the caller owns and removes.
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestPki {
  dir: string;
  caFile: string;
  caKeyFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  /** Client certificate (CN = clientUser, O = clientGroup) signed by the CA. */
  clientCertFile: string;
  clientKeyFile: string;
  clientUser: string;
  clientGroup: string;
  /** A CA that signed nothing here. */
  otherCaFile: string;
  ca: Buffer;
  serverCert: Buffer;
  serverKey: Buffer;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd, timeout: 30_000 });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`openssl ${args[0]} failed: ${err.stderr ?? err.message}`);
  }
}

async function selfSignedCa(dir: string, name: string, cn: string): Promise<void> {
  await openssl([
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ], dir);
}

async function leaf(dir: string, name: string, subj: string, ext: string): Promise<void> {
  await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj], dir);
  await writeFile(join(dir, `${name}.ext`), ext);
  await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key',
    '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`], dir);
}

/** Generate the PKI into `dir` (which must exist). */
export async function makeTestPki(dir: string, clientUser = 'kinglet-agent', clientGroup = 'kinglet'): Promise<TestPki> {
  await selfSignedCa(dir, 'ca', 'kinglet-test-ca');
  await selfSignedCa(dir, 'other-ca', 'kinglet-unrelated-ca');
  await leaf(dir, 'server', '/CN=kube-apiserver',
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' +
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n');
  await leaf(dir, 'client', `/O=${clientGroup}/CN=${clientUser}`,
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  const [ca, serverCert, serverKey] = await Promise.all(
    ['ca.crt', 'server.crt', 'server.key'].map((f) => readFile(join(dir, f))),
  );
  return {
    dir,
    caFile: join(dir, 'ca.crt'),
    caKeyFile: join(dir, 'ca.key'),
    serverCertFile: join(dir, 'server.crt'),
    serverKeyFile: join(dir, 'server.key'),
    clientCertFile: join(dir, 'client.crt'),
    clientKeyFile: join(dir, 'client.key'),
    clientUser,
    clientGroup,
    otherCaFile: join(dir, 'other-ca.crt'),
    ca: ca!,
    serverCert: serverCert!,
    serverKey: serverKey!,
  };
}
