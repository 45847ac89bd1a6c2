// `pnpm bench [pretrain] [options]`: see README.md and `pnpm bench --help`.
import { runBenchCommand, runReportCommand } from './bench_command.js';
import { runPretrainCommand } from './pretrain_command.js';

// pnpm passes a `--` through in some invocations (`pnpm run bench -- --quick`).
const argv = process.argv.slice(2).filter((a) => a !== '--');
try {
  if (argv[0] === 'pretrain') await runPretrainCommand(argv.slice(1));
  else if (argv[0] === 'report') await runReportCommand(argv.slice(1));
  else await runBenchCommand(argv);
} catch (error) {
  console.error(`bench: ${(error as Error).message}`);
  process.exitCode = 1;
}
