// `pnpm bench [pretrain|report] [options]`: see README.md and `pnpm bench --help`.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * Core resolves to its TypeScript source here, which imports a generated bundle of tfjs-core's
 * gradients (`pnpm --filter @peft/core generate`, also run by its build). On a fresh checkout it is
 * not there yet: make it (about a second) before anything imports core.
 */
function ensureCoreGenerated(): void {
  const core = dirname(createRequire(import.meta.url).resolve('@peft/core/package.json'));
  if (existsSync(join(core, 'src', 'generated', 'tfjs_gradients.js'))) return;
  execFileSync(process.execPath, [join(core, 'scripts', 'bundle-gradients.mjs')], { stdio: 'ignore' });
}

// pnpm passes a `--` through in some invocations (`pnpm run bench -- --quick`).
const argv = process.argv.slice(2).filter((a) => a !== '--');
try {
  ensureCoreGenerated();
  if (argv[0] === 'pretrain') {
    const { runPretrainCommand } = await import('./pretrain_command.js');
    await runPretrainCommand(argv.slice(1));
  } else {
    const { runBenchCommand, runReportCommand } = await import('./bench_command.js');
    if (argv[0] === 'report') await runReportCommand(argv.slice(1));
    else await runBenchCommand(argv);
  }
} catch (error) {
  console.error(`bench: ${(error as Error).message}`);
  process.exitCode = 1;
}
