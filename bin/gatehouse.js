#!/usr/bin/env node
// The `gatehouse` command. Node.js 24 runs the TypeScript sources directly (type stripping).
import { runCli } from '../src/cli/main.ts';

const code = await runCli(process.argv.slice(2));
process.stdout.write('', () => process.exit(code));
