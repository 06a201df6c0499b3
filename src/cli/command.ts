// One command of the `gatehouse` command line. Its own module, so that main.ts and each command
// file import it without importing one another.
import type { ParseArgsConfig } from 'node:util';
import type { CliContext } from './context.ts';

export interface CommandResult {
  json: unknown;
  text: string;
  exitCode?: number;
  stderr?: string;
}

export interface Command {
  /** e.g. "clients create" */
  name: string;
  summary: string;
  /** Shown by `gatehouse <command> --help`: every option and what it means. */
  help?: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** A command whose output is a finding, not an error (a failed audit verify), sets exitCode and may say why on stderr. */
  /**
   * Runs before the command opens the database (which takes the embedded database's lock and may
   * generate a master key): checks that need neither, or an answer that does not open it at all
   * (a backup written by the running server). Null: go on to `run`.
   */
  withoutContext?(env: NodeJS.ProcessEnv, values: Record<string, any>): Promise<CommandResult | null>;
  run(ctx: CliContext, values: Record<string, any>): Promise<CommandResult>;
}
