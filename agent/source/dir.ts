// `--source dir:<path>`: Kubernetes objects from a directory of manifests,
// watched for changes. Used by the lab and by offline edge nodes.
//
// What is read
// - Every regular file (or symlink to one) directly in the directory whose name
//   ends in .yaml, .yml or .json. Not recursive: subdirectories are ignored.
//   Names starting with "." are ignored (editor swap/backup files, and the
//   "..data" entries of a mounted ConfigMap; the visible symlinks are read).
// - YAML may hold several documents (---); JSON one value or an array. Both may
//   use `kind: List` with items (kubectl get -o yaml) or typed lists
//   (ServiceList ...). See manifests.ts for what is accepted per object.
// - Files are taken in name order; an object defined twice (same kind,
//   namespace, name) is taken from the last definition, like
//   `kubectl apply -f <dir>` would leave it, and a warning is logged.
// - Objects are kept trimmed to the fields the agent reads (trim.ts), trimmed
//   as they are parsed: a large List (JSON, or YAML laid out as kubectl
//   prints it) is parsed one item at a time (json-items.ts, yaml-items.ts),
//   so the peak is about the file's text plus the trimmed objects. YAML is
//   still far slower to parse than JSON: 10k services x 10 endpoints as one
//   23 MB YAML List take 10-15 s on a busy 2-core box, as JSON well under
//   1 s. Prefer JSON for large directories.
//
// When a file does not parse
// - It is logged, its error is kept in status().fileErrors, malformed is
//   counted once per broken version, and the LAST GOOD CONTENT of that file
//   stays in the snapshot: an editor's half-written save must not make
//   services vanish from the datapath. A file that never parsed contributes
//   nothing. Deleting the file removes its objects.
// - The same holds for a file that becomes empty (whitespace only) after it
//   had objects: that is what an in-place save looks like between truncate and
//   write. It is reported in fileErrors (not counted as malformed); delete
//   the file to remove its objects. (A file with only comments is a valid
//   empty manifest.)
// - Limits: a file caught mid-write that still parses (cut between two
//   documents, or momentarily empty) is taken as it is until the write
//   finishes and the next event arrives. Writers (the lab, scripts) should
//   replace files atomically: write a temporary ".name" file, then rename it.
//
// Watching
// - fs.watch on the directory, debounced (50 ms), plus a periodic rescan
//   (2 s) as a safety net for events fs.watch misses (network filesystems,
//   the directory replaced under us, which also re-arms the watcher).
// - A scan stats every file and reads only those whose (inode, size, mtime,
//   ctime) changed, so an idle rescan costs one readdir + N stats.
// - onChange is called after the first full read (so a consumer waiting for
//   `synced` can run) and after any scan that changed the snapshot; never
//   after stop().
// - If the directory becomes unreadable after start, the last snapshot is kept
//   and the error is reported (lastError) until it is readable again.
import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from '../log.ts';
import type { KubeObject, Snapshot, Source, SourceStatus } from './types.ts';
import { emptySnapshot } from './types.ts';
import { classifiedAgain, parseManifests, toSnapshot, type ClassifiedObject } from './manifests.ts';

export interface DirSourceOptions {
  /** Log lines (level, msg, fields). Default: silent. */
  logger?: Logger;
  /** Coalesce fs.watch events for this long before scanning. Default 50 ms. */
  debounceMs?: number;
  /** Periodic full rescan; 0 disables it. Default 2000 ms. */
  rescanMs?: number;
  /** Use fs.watch (default true). Without it, only the periodic rescan sees changes. */
  watch?: boolean;
  /** Clock for lastSync (tests). */
  now?: () => Date;
}

export interface DirSourceStatus extends SourceStatus {
  kind: 'dir';
  /** Manifest files currently in the directory. */
  files: number;
  /** Objects in the snapshot. */
  objects: number;
  /** Files whose current content does not parse, with the error; their last good content (if any) is still used. */
  fileErrors: Record<string, string>;
  /** fs.watch is active (false: only the periodic rescan notices changes). */
  watching: boolean;
}

interface FileState {
  sig: string;
  hash: string;
  /** Objects of the last version that parsed (empty if none ever did), trimmed; keys are derived again at each rebuild rather than kept. */
  objects: KubeObject[];
  error?: string;
}

const MANIFEST = /\.(ya?ml|json)$/i;

function errMsg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class DirSource implements Source {
  readonly dir: string;
  readonly #log: Logger;
  readonly #debounceMs: number;
  readonly #rescanMs: number;
  readonly #useWatch: boolean;
  readonly #now: () => Date;

  #files = new Map<string, FileState>();
  #snapshot: Snapshot = emptySnapshot();
  #objects = 0;
  #malformed = 0;
  #synced = false;
  #lastSync: string | undefined;
  #dirError: string | undefined;
  #lastError: string | undefined;

  #onChange: (() => void) | undefined;
  #started = false;
  #stopped = false;
  #watcher: FSWatcher | undefined;
  #watchedIno: bigint | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #interval: NodeJS.Timeout | undefined;
  #scanning: Promise<void> | undefined;
  #again = false;

  constructor(dir: string, opts: DirSourceOptions = {}) {
    this.dir = dir;
    this.#log = opts.logger ?? (() => {});
    this.#debounceMs = opts.debounceMs ?? 50;
    this.#rescanMs = opts.rescanMs ?? 2000;
    this.#useWatch = opts.watch ?? true;
    this.#now = opts.now ?? (() => new Date());
  }

  /**
   * Read the directory once (rejects if it cannot be read at all), then watch it.
   * Calls onChange once after that first read.
   */
  async start(onChange: () => void): Promise<void> {
    if (this.#started) throw new Error('dir source: already started');
    this.#started = true;
    try {
      const st = await stat(this.dir, { bigint: true });
      if (!st.isDirectory()) throw new Error('not a directory');
    } catch (e) {
      throw new Error(`dir source: cannot read ${this.dir}: ${errMsg(e)}`, { cause: e });
    }
    this.#onChange = onChange;
    await this.rescan();
    if (this.#stopped) return;
    this.#armWatcher();
    if (this.#rescanMs > 0) this.#interval = setInterval(() => void this.rescan(), this.#rescanMs);
    this.#log('info', 'dir source synced', { dir: this.dir, files: this.#files.size, objects: this.#objects });
    this.#notify();
  }

  snapshot(): Snapshot {
    const s = this.#snapshot;
    return {
      services: [...s.services],
      endpointSlices: [...s.endpointSlices],
      nodes: [...s.nodes],
      pods: [...s.pods],
      namespaces: [...s.namespaces],
      networkPolicies: [...s.networkPolicies],
    };
  }

  status(): DirSourceStatus {
    const fileErrors: Record<string, string> = {};
    for (const [name, f] of [...this.#files].sort(([a], [b]) => (a < b ? -1 : 1))) if (f.error) fileErrors[name] = f.error;
    const st: DirSourceStatus = {
      kind: 'dir',
      endpoint: this.dir,
      synced: this.#synced,
      malformed: this.#malformed,
      files: this.#files.size,
      objects: this.#objects,
      fileErrors,
      watching: this.#watcher !== undefined,
    };
    if (this.#lastSync !== undefined) st.lastSync = this.#lastSync;
    if (this.#lastError !== undefined) st.lastError = this.#lastError;
    return st;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#onChange = undefined;
    if (this.#debounce) clearTimeout(this.#debounce);
    this.#debounce = undefined;
    if (this.#interval) clearInterval(this.#interval);
    this.#interval = undefined;
    this.#closeWatcher();
    if (this.#scanning) await this.#scanning;
  }

  /**
   * Scan now (also what the watcher and the timer do). Scans never overlap: a
   * request during a scan runs one more scan right after it. Resolves when
   * the directory has been looked at since the call.
   */
  rescan(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    if (this.#scanning) {
      this.#again = true;
      return this.#scanning;
    }
    this.#scanning = (async () => {
      try {
        do {
          this.#again = false;
          try {
            await this.#scanOnce();
          } catch (e) {
            // Not expected (I/O errors are handled inside); never let a timer's scan reject unhandled.
            this.#lastError = `scan failed: ${errMsg(e)}`;
            this.#log('error', 'dir source: scan failed', { dir: this.dir, error: errMsg(e) });
          }
        } while (this.#again && !this.#stopped);
      } finally {
        this.#scanning = undefined;
      }
    })();
    return this.#scanning;
  }

  #armWatcher(): void {
    if (!this.#useWatch || this.#stopped || this.#watcher) return;
    try {
      const w = watch(this.dir, { persistent: true }, () => this.#schedule());
      w.on('error', (e) => {
        this.#log('warn', 'dir source: watcher failed; relying on the periodic rescan', { dir: this.dir, error: errMsg(e) });
        this.#closeWatcher();
      });
      this.#watcher = w;
      void stat(this.dir, { bigint: true }).then(
        (st) => { if (this.#watcher === w) this.#watchedIno = st.ino; },
        () => {},
      );
    } catch (e) {
      this.#log('warn', 'dir source: cannot watch the directory; relying on the periodic rescan', { dir: this.dir, error: errMsg(e) });
    }
  }

  #closeWatcher(): void {
    const w = this.#watcher;
    this.#watcher = undefined;
    this.#watchedIno = undefined;
    if (w) {
      try {
        w.close();
      } catch {
        // already closed
      }
    }
  }

  #schedule(): void {
    if (this.#stopped || this.#debounce) return;
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      void this.rescan();
    }, this.#debounceMs);
  }

  async #scanOnce(): Promise<void> {
    let names: string[];
    try {
      const dst = await stat(this.dir, { bigint: true });
      if (!dst.isDirectory()) throw new Error('not a directory');
      // The directory was replaced (or the watcher died): watch the new one.
      if (this.#synced && (this.#watchedIno !== undefined && dst.ino !== this.#watchedIno)) this.#closeWatcher();
      if (this.#synced && !this.#watcher) this.#armWatcher();
      const entries = await readdir(this.dir, { withFileTypes: true });
      names = entries
        .filter((e) => (e.isFile() || e.isSymbolicLink()) && !e.name.startsWith('.') && MANIFEST.test(e.name))
        .map((e) => e.name)
        .sort();
    } catch (e) {
      const msg = `cannot read ${this.dir}: ${errMsg(e)}`;
      if (msg !== this.#dirError) this.#log('error', 'dir source: directory unreadable; keeping the last objects', { dir: this.dir, error: errMsg(e) });
      this.#dirError = msg;
      this.#lastError = msg;
      return;
    }
    if (this.#dirError) this.#log('info', 'dir source: directory readable again', { dir: this.dir });
    this.#dirError = undefined;

    let changed = false;
    const seen = new Set<string>();
    for (const name of names) {
      if (this.#stopped) return;
      const path = join(this.dir, name);
      const prev = this.#files.get(name);
      let sig: string;
      let text: string;
      try {
        const st = await stat(path, { bigint: true });
        if (!st.isFile()) continue; // a symlink to a directory, a dangling link...
        sig = `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
        seen.add(name);
        if (prev && prev.sig === sig) continue;
        text = await readFile(path, 'utf8');
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') continue; // removed between readdir and here: handled as gone
        // Unreadable (permissions...): keep what we had, report it.
        seen.add(name);
        const msg = `cannot read: ${errMsg(e)}`;
        if (prev?.error !== msg) this.#log('warn', 'dir source: manifest unreadable; keeping its last good content', { file: name, error: errMsg(e) });
        this.#files.set(name, { sig: '', hash: '', objects: prev?.objects ?? [], error: msg });
        continue;
      }
      const hash = createHash('sha256').update(text).digest('hex');
      if (prev && prev.hash === hash) {
        this.#files.set(name, { ...prev, sig });
        continue;
      }
      if (text.trim() === '' && prev && prev.objects.length > 0) {
        // Most likely an in-place save caught between truncate and write.
        const error = 'file is empty; keeping its last good content (delete the file to remove its objects)';
        if (prev.error !== error) this.#log('warn', 'dir source: manifest became empty; keeping its last good content', { file: name, keptObjects: prev.objects.length });
        this.#files.set(name, { sig, hash, objects: prev.objects, error });
        continue;
      }
      const r = parseManifests(text, name, { trim: true });
      if (!r.ok) {
        this.#malformed++;
        this.#log('warn', 'dir source: manifest does not parse; keeping its last good content', {
          file: name,
          error: r.error,
          keptObjects: prev?.objects.length ?? 0,
        });
        this.#files.set(name, { sig, hash, objects: prev?.objects ?? [], error: r.error });
        continue;
      }
      for (const s of r.skipped) {
        if (s.malformed) {
          this.#malformed++;
          this.#log('warn', 'dir source: object skipped', { file: name, where: s.where, reason: s.reason });
        } else {
          this.#log('debug', 'dir source: object ignored', { file: name, where: s.where, reason: s.reason });
        }
      }
      if (prev?.error) this.#log('info', 'dir source: manifest parses again', { file: name });
      // Only what the agent reads is kept (trimmed as parsed, trim.ts); the text is dropped here.
      const objects = r.objects.map((o) => o.object);
      this.#files.set(name, { sig, hash, objects });
      changed = true;
    }
    for (const name of [...this.#files.keys()]) {
      if (!seen.has(name)) {
        const gone = this.#files.get(name);
        this.#files.delete(name);
        if (gone && gone.objects.length > 0) changed = true;
        this.#log('debug', 'dir source: manifest removed', { file: name });
      }
    }

    if (changed || !this.#synced) this.#rebuild();
    const errors = [...this.#files.entries()].filter(([, f]) => f.error).map(([n, f]) => `${n}: ${f.error}`);
    this.#lastError = errors[0];
    this.#lastSync = this.#now().toISOString();
    const first = !this.#synced;
    this.#synced = true;
    // start() reports the first read itself, once the watcher is armed.
    if (changed && !first && !this.#stopped) this.#notify();
  }

  #notify(): void {
    try {
      this.#onChange?.();
    } catch (e) {
      this.#log('error', 'dir source: onChange handler threw', { dir: this.dir, error: errMsg(e) });
    }
  }

  #rebuild(): void {
    const all: ClassifiedObject[] = [];
    for (const name of [...this.#files.keys()].sort()) for (const o of this.#files.get(name)?.objects ?? []) all.push(classifiedAgain(o));
    const { snapshot, replaced } = toSnapshot(all);
    for (const key of new Set(replaced)) {
      this.#log('warn', 'dir source: object defined more than once; the last definition wins', { dir: this.dir, object: key });
    }
    this.#snapshot = snapshot;
    let n = 0;
    for (const v of Object.values(snapshot)) n += v.length;
    this.#objects = n;
  }
}
