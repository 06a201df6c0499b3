// The `gatehouse` command line (docs/architecture.md, "Command line"). With --json a command prints
// one JSON object on stdout and nothing else; errors go to stderr with a non-zero exit.
import { parseArgs } from 'node:util';
import { isExposed, isGatehouseError } from '../errors.ts';
import type { Command } from './command.ts';
import { openContext, type CliContext } from './context.ts';
import { clientCommands } from './clients.ts';
import { keyCommands } from './keys.ts';
import { userCommands } from './users.ts';
import { auditCommands } from './audit.ts';
import { agentCommands } from './agents.ts';
import { backupCommands } from './backup.ts';
import { migrateToLatest } from '../db/migrate.ts';

const migrate: Command = {
  name: 'migrate',
  summary: 'run database migrations',
  options: {},
  async run(ctx) {
    const applied = await migrateToLatest(ctx.db);
    return { json: { ok: true, applied }, text: applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date' };
  },
};

export function allCommands(): Command[] {
  return [migrate, ...userCommands, ...clientCommands, ...agentCommands, ...keyCommands, ...auditCommands, ...backupCommands];
}

function usage(commands: Command[]): string {
  return ['usage: gatehouse <command> [options] [--json]', '', ...commands.map((c) => `  ${c.name.padEnd(22)} ${c.summary}`)].join('\n');
}

export async function runCli(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  out = process.stdout,
  err = process.stderr,
): Promise<number> {
  const commands = allCommands();
  const words = argv.filter((a) => !a.startsWith('-'));
  const command = commands.find((c) => c.name === words.slice(0, c.name.split(' ').length).join(' '));
  if (!command || argv.includes('--help') || argv.includes('-h')) {
    const text = command?.help
      ? `usage: gatehouse ${command.name} [options] [--json]\n\n${command.summary}\n\n${command.help}`
      : usage(commands);
    (command || argv.length === 0 || argv.includes('--help') ? out : err).write(text + '\n');
    return command || argv.length === 0 || argv.includes('--help') ? 0 : 2;
  }
  let values: Record<string, any>;
  try {
    const parsed = parseArgs({
      args: argv.slice(command.name.split(' ').length),
      options: { ...command.options, json: { type: 'boolean' } },
      strict: true,
      allowPositionals: false,
    });
    values = parsed.values;
  } catch (e) {
    err.write(`gatehouse ${command.name}: ${(e as Error).message}\n`);
    return 2;
  }
  let ctx: CliContext | undefined;
  try {
    const result = (await command.withoutContext?.(env, values)) ?? (await command.run((ctx = await openContext(env)), values));
    out.write(values.json ? JSON.stringify(result.json) + '\n' : result.text + '\n');
    if (result.stderr) err.write(`gatehouse ${command.name}: ${result.stderr}\n`);
    return result.exitCode ?? 0;
  } catch (e) {
    err.write(`gatehouse ${command.name}: ${isExposed(e) ? e.message : 'internal error: ' + ((e as Error)?.message ?? String(e))}\n`);
    // 2: the request was refused (as for a usage error); 1: the environment or Gatehouse failed.
    return isGatehouseError(e) ? 2 : 1;
  } finally {
    await ctx?.close();
  }
}
