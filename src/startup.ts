// What the server does once it listens. The people domain adds the first-owner link here.
import type { Gatehouse } from './app.ts';

type Hook = (g: Gatehouse) => Promise<void>;
const hooks: Hook[] = [];

export function addStartupHook(hook: Hook): void {
  hooks.push(hook);
}

export async function onServerStarted(g: Gatehouse): Promise<void> {
  for (const hook of hooks) await hook(g);
}
