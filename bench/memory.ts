// Where a server process's resident memory is (for the benches' output and README "Sizing"):
// V8's heap and its spaces, Node's external memory, and /proc/self/smaps grouped by kind of mapping.
import fs from 'node:fs';
import v8 from 'node:v8';

export interface MemoryReport {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** V8 heap spaces: committed bytes (physical size). */
  spaces: Record<string, number>;
  /** Resident bytes per kind of mapping (Linux only; empty elsewhere). */
  smaps: Record<string, number>;
  /** The largest mappings: size and resident bytes. */
  top: Array<{ start: string; size: number; rss: number; perms: string; path: string }>;
}

const MiB = 2 ** 20;

export function memoryReport(): MemoryReport {
  const mu = process.memoryUsage();
  const spaces: Record<string, number> = {};
  for (const s of v8.getHeapSpaceStatistics()) spaces[s.space_name] = s.physical_space_size;
  const { smaps, top } = readSmaps();
  return {
    rss: mu.rss,
    heapTotal: mu.heapTotal,
    heapUsed: mu.heapUsed,
    external: mu.external,
    arrayBuffers: mu.arrayBuffers,
    spaces,
    smaps,
    top,
  };
}

function readSmaps(): { smaps: Record<string, number>; top: MemoryReport['top'] } {
  let text: string;
  try {
    text = fs.readFileSync('/proc/self/smaps', 'utf8');
  } catch {
    return { smaps: {}, top: [] };
  }
  const maps: Array<{ start: string; startN: bigint; size: number; rss: number; perms: string; path: string }> = [];
  let cur: (typeof maps)[number] | null = null;
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) {
      const startN = BigInt(`0x${m[1]}`);
      cur = { start: m[1]!, startN, size: Number(BigInt(`0x${m[2]}`) - startN), rss: 0, perms: m[3]!, path: m[4]! };
      maps.push(cur);
      continue;
    }
    const f = /^Rss:\s+(\d+) kB/.exec(line);
    if (f && cur) cur.rss = Number(f[1]) * 1024;
  }
  const smaps: Record<string, number> = {};
  const add = (k: string, n: number) => (smaps[k] = (smaps[k] ?? 0) + n);
  for (const m of maps) add(kindOf(m), m.rss);
  const top = [...maps]
    .sort((a, b) => b.rss - a.rss)
    .slice(0, 12)
    .map(({ start, size, rss, perms, path }) => ({ start, size, rss, perms, path }));
  return { smaps, top };
}

function kindOf(m: { size: number; path: string; startN: bigint }): string {
  if (m.path === '[heap]') return 'malloc brk heap';
  if (m.path.startsWith('[stack')) return 'stacks';
  if (m.path.startsWith('/')) return 'files (code, data)';
  if (m.path.startsWith('[')) return 'other';
  // V8 reserves several GiB of address space for a WebAssembly memory (guard regions).
  if (m.size >= 1024 * MiB) return 'WebAssembly memory';
  return 'anonymous (V8 heap, malloc arenas, mmapped blocks)';
}

export function formatMemory(r: MemoryReport): string {
  const f = (n: number) => (n / MiB).toFixed(0);
  const spaces = Object.entries(r.spaces)
    .filter(([, n]) => n >= MiB)
    .map(([k, n]) => `${k.replace(/_space$/, '')} ${f(n)}`)
    .join(', ');
  const smaps = Object.entries(r.smaps)
    .filter(([, n]) => n >= MiB)
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ${f(n)}`)
    .join(', ');
  return `rss ${f(r.rss)} MiB: V8 heap ${f(r.heapTotal)} committed (${f(r.heapUsed)} used; ${spaces}), external ${f(r.external)} (array buffers ${f(r.arrayBuffers)}); by mapping: ${smaps}`;
}

/** The largest mappings, one a line (BENCH_MEMORY_MAPPINGS=1). */
export function formatMappings(r: MemoryReport): string {
  return r.top
    .map(
      (m) =>
        `  ${m.start} ${m.perms} size ${(m.size / MiB).toFixed(1).padStart(8)} MiB  resident ${(m.rss / MiB).toFixed(1).padStart(6)} MiB  ${m.path}`,
    )
    .join('\n');
}
