// Static assets from static/: a fixed list, read once, so no path from a request touches the disk.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type Router from '@koa/router';

const DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'static');
const TYPES: Record<string, string> = { '.css': 'text/css; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.svg': 'image/svg+xml', '.png': 'image/png' };

export function staticRoutes(router: Router): void {
  const files = new Map<string, { body: Buffer; type: string }>();
  for (const name of fs.existsSync(DIR) ? fs.readdirSync(DIR) : []) {
    const type = TYPES[path.extname(name)];
    if (type) files.set(name, { body: fs.readFileSync(path.join(DIR, name)), type });
  }
  router.get('/static/:name', (ctx) => {
    const file = files.get(ctx.params.name ?? '');
    if (!file) {
      ctx.status = 404;
      return;
    }
    ctx.type = file.type;
    ctx.set('cache-control', 'public, max-age=3600');
    ctx.body = file.body;
  });
}
