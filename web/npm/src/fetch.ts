// Fetching model files with byte progress, and keeping them in the Cache API: keyed by URL, each
// entry stored with its size and SHA-256, both checked on every read; an entry that fails either
// check is evicted and fetched again.

import { FetchError } from './errors.js';

/** The Cache API cache softmoe keeps model files in. */
export const CACHE_NAME = 'softmoe-models-v1';
const SIZE = 'x-softmoe-size';
const SHA = 'x-softmoe-sha256';

/** How one file of a load was obtained. */
export interface FileReport {
  /** The absolute URL (the cache key). */
  url: string;
  bytes: number;
  /** Read from the Cache API instead of the network. */
  fromCache: boolean;
  /** Why a cached copy was thrown away and the file fetched again ("size 10 ≠ 1500608 bytes",
   * "SHA-256 mismatch"), or null. */
  evicted: string | null;
  /** Why the file could not be stored in the cache (quota, no Cache API here), or null. */
  notCached: string | null;
}

export interface Fetched extends FileReport {
  data: Uint8Array;
}

async function sha256(data: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The Cache API cache, or why there is none (an insecure context, or a browser without it). */
async function openCache(): Promise<Cache | string> {
  if (typeof caches === 'undefined' || typeof crypto === 'undefined' || !crypto.subtle) return 'the Cache API needs a secure context (https or localhost)';
  try {
    return await caches.open(CACHE_NAME);
  } catch (e) {
    return `the Cache API refused: ${(e as Error).message ?? e}`;
  }
}

/** The cached bytes of `url` if the entry is whole, else null and why it was evicted. */
async function readCached(cache: Cache, url: string): Promise<{ data: Uint8Array | null; evicted: string | null }> {
  const res = await cache.match(url);
  if (!res) return { data: null, evicted: null };
  const size = Number(res.headers.get(SIZE));
  const hash = res.headers.get(SHA);
  let data: Uint8Array | null = null;
  let evicted: string | null = null;
  try {
    data = new Uint8Array(await res.arrayBuffer());
    if (data.length !== size) evicted = `size ${data.length} ≠ ${size} bytes`;
    else if (!hash || (await sha256(data)) !== hash) evicted = 'SHA-256 mismatch';
  } catch (e) {
    evicted = `unreadable (${(e as Error).message ?? e})`;
  }
  if (evicted) {
    await cache.delete(url);
    return { data: null, evicted };
  }
  return { data, evicted: null };
}

/** Fetches `url`, calling `onBytes(loaded, total)` as chunks arrive (total null when unknown). */
async function download(url: string, name: string, onBytes: (loaded: number, total: number | null) => void): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new FetchError(`softmoe: fetching ${name} failed: ${(e as Error).message ?? e}`, url, null);
  }
  if (!res.ok) throw new FetchError(`softmoe: fetching ${name} failed: HTTP ${res.status} ${res.statusText}`.trimEnd(), url, res.status);
  // Content-Length counts the encoded bytes when the response is compressed: no total then.
  const length = res.headers.get('content-length');
  const total = length !== null && !res.headers.get('content-encoding') ? Number(length) : null;
  onBytes(0, total);
  if (!res.body) {
    const data = new Uint8Array(await res.arrayBuffer());
    onBytes(data.length, total ?? data.length);
    return data;
  }
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    onBytes(loaded, total);
  }
  if (chunks.length === 1) return chunks[0];
  const data = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) { data.set(c, at); at += c.length; }
  return data;
}

/**
 * Fetches each URL (all at once), from the cache where `useCache` and a whole entry is there;
 * stores what came from the network. `onBytes(loaded, total)` sums over all files (total null
 * until every file's size is known). Errors name each file by `names` (the URLs as the caller
 * wrote them); when several fail, the first file's error is the one thrown.
 */
export async function fetchFiles(urls: string[], useCache: boolean, onBytes: (loaded: number, total: number | null) => void, names: string[] = urls): Promise<Fetched[]> {
  const cache = useCache ? await openCache() : 'caching is off (cache: false)';
  const loaded = urls.map(() => 0);
  const totals: (number | null)[] = urls.map(() => null);
  const report = () => onBytes(loaded.reduce((a, b) => a + b, 0), totals.every((t) => t !== null) ? totals.reduce<number>((a, b) => a + (b ?? 0), 0) : null);
  const settled = await Promise.allSettled(urls.map(async (url, i): Promise<Fetched> => {
    let evicted: string | null = null;
    if (typeof cache !== 'string') {
      const hit = await readCached(cache, url);
      evicted = hit.evicted;
      if (hit.data) {
        loaded[i] = totals[i] = hit.data.length;
        report();
        return { url, data: hit.data, bytes: hit.data.length, fromCache: true, evicted: null, notCached: null };
      }
    }
    const data = await download(url, names[i], (l, t) => { loaded[i] = l; totals[i] = t; report(); });
    totals[i] = data.length;
    report();
    let notCached: string | null = typeof cache === 'string' ? cache : null;
    if (typeof cache !== 'string') {
      try {
        const headers = { 'content-type': 'application/octet-stream', [SIZE]: String(data.length), [SHA]: await sha256(data) };
        await cache.put(url, new Response(data as Uint8Array<ArrayBuffer>, { headers }));
      } catch (e) {
        notCached = `storing it failed: ${(e as Error).message ?? e}`;
      }
    }
    return { url, data, bytes: data.length, fromCache: false, evicted, notCached };
  }));
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<Fetched>).value);
}

/**
 * Removes cached model files: those under `url` (a model folder or one file), or all of them.
 * Resolves to the number of entries removed.
 */
export async function clearCache(url?: string | URL): Promise<number> {
  const cache = await openCache();
  if (typeof cache === 'string') return 0;
  const prefix = url === undefined ? null : new URL(String(url), baseUrl()).href;
  let removed = 0;
  for (const req of await cache.keys()) {
    if (prefix === null || req.url === prefix || req.url.startsWith(prefix.endsWith('/') ? prefix : `${prefix}/`)) {
      if (await cache.delete(req)) removed++;
    }
  }
  return removed;
}

/** The base relative URLs resolve against: the page (or the worker script). */
export function baseUrl(): string {
  return typeof location !== 'undefined' ? location.href : 'http://localhost/';
}
