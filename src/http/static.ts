// Static assets from static/: a fixed list, read once, so no path from a request touches the disk.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type Router from '@koa/router';

const DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'static');
// Front-end libraries served from their packages, pinned by package-lock.json.
const VENDOR: Record<string, string> = {
  'simplewebauthn-browser.js': path.join(DIR, '..', 'node_modules', '@simplewebauthn', 'browser', 'dist', 'bundle', 'index.umd.min.js'),
};
const TYPES: Record<string, string> = {
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

export function staticRoutes(router: Router): void {
  const files = new Map<string, { body: Buffer; type: string }>();
  for (const name of fs.existsSync(DIR) ? fs.readdirSync(DIR) : []) {
    const type = TYPES[path.extname(name)];
    if (type) files.set(name, { body: fs.readFileSync(path.join(DIR, name)), type });
  }
  for (const [name, file] of Object.entries(VENDOR)) {
    if (fs.existsSync(file)) files.set(name, { body: fs.readFileSync(file), type: TYPES['.js']! });
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
