// The reference the dir source's item-by-item parsers are held to: the whole
// text parsed at once (parseManifests), then every object trimmed.
import { parseManifests } from '../../agent/source/manifests.ts';
import { trimObject } from '../../agent/source/trim.ts';

export function wholeThenTrimmed(text: string, name: string): ReturnType<typeof parseManifests> {
  const r = parseManifests(text, name);
  if (!r.ok) return r;
  return { ...r, objects: r.objects.map((o) => ({ ...o, object: trimObject(o.object.kind ?? '', o.object) })) };
}
