// A browser without a browser: follows redirects by hand, keeps cookies, reads form fields.
// For tests that attack the sign-in endpoints directly and for the sign-in benchmark.
export class CookieJar {
  #cookies = new Map<string, string>();
  take(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const i = pair!.indexOf('=');
      const name = pair!.slice(0, i).trim();
      const value = pair!.slice(i + 1).trim();
      if (/expires=Thu, 01 Jan 1970/i.test(line) || value === '') this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }
  header(): string {
    return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

export interface Step {
  status: number;
  url: string;
  location: string | null;
  text: string;
  headers: Headers;
}

/** The part of fetch the agent uses (test/helpers/topology.ts has one over TLS with a test CA). */
type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string; redirect: 'manual' },
) => Promise<Response>;

export class HttpAgent {
  jar = new CookieJar();
  readonly base: string;
  readonly #fetch: FetchLike;
  constructor(base: string, fetchFn: FetchLike = fetch) {
    this.base = base;
    this.#fetch = fetchFn;
  }

  async request(
    url: string,
    init: { method?: string; form?: Record<string, string>; json?: unknown; headers?: Record<string, string> } = {},
  ): Promise<Step> {
    const absolute = new URL(url, this.base).href;
    const headers: Record<string, string> = { cookie: this.jar.header(), ...(init.headers ?? {}) };
    let body: string | undefined;
    if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(init.form).toString();
    } else if (init.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(init.json);
    }
    const res = await this.#fetch(absolute, { method: init.method ?? (body ? 'POST' : 'GET'), headers, body, redirect: 'manual' });
    this.jar.take(res);
    return { status: res.status, url: absolute, location: res.headers.get('location'), text: await res.text(), headers: res.headers };
  }

  /** Follow redirects while they stay on Gatehouse; stop at the first page or at a foreign URL. */
  async follow(step: Step): Promise<Step> {
    let s = step;
    for (let i = 0; i < 10 && s.location; i++) {
      const next = new URL(s.location, s.url);
      if (next.origin !== new URL(this.base).origin) return s;
      s = await this.request(next.href);
    }
    return s;
  }
}

export function formField(html: string, name: string): string | null {
  const m = new RegExp(`name="${name}"[^>]*value="([^"]*)"`).exec(html) ?? new RegExp(`value="([^"]*)"[^>]*name="${name}"`).exec(html);
  return m ? m[1]!.replace(/&amp;/g, '&').replace(/&quot;/g, '"') : null;
}

export function alertText(html: string): string | null {
  const m = /<p role="alert">([^<]*)<\/p>/.exec(html);
  return m ? m[1]! : null;
}
