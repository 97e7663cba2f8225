// if_nametoindex(3) through koffi: the index of a device in the calling
// process's network namespace, without an `ip` exec. The agent looks up the
// host side of each pod's veth this way when the CNI plugin registers it.
import koffi from 'koffi';

let fn: ((name: string) => number) | undefined;

/** The device's index, 0 when there is no such device (or the name is not valid). */
export function ifNameToIndex(name: string): number {
  if (!name || name.length > 15 || name.includes('/')) return 0;
  fn ??= koffi.load('libc.so.6').func('unsigned int if_nametoindex(const char *ifname)') as (name: string) => number;
  return fn(name);
}
