#!/usr/bin/env node
// The hookline CLI. Everything is in cli.ts; this file only starts it (docs/cli.md).
import { run } from './cli';

void run(process.argv.slice(2), { env: process.env, stdout: process.stdout, stderr: process.stderr, isTty: process.stderr.isTTY === true }).then((code) => {
  process.exitCode = code;
});
