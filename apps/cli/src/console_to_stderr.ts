// Imported first by main.ts: stdout carries only the command's own output (the JSON of `logits`, the
// text of `generate`), so that scripts can read it. tfjs, Dawn and the backends report through
// console.log/info/warn; all of the console goes to stderr, and commands write with process.stdout.
import { Console } from 'node:console';

globalThis.console = new Console({ stdout: process.stderr, stderr: process.stderr });
