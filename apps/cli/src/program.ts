// The `peft` command line: one commander program, one file per command under commands/. The commands
// are imported when they run, so that --help and mistakes in the options answer without loading tfjs.
import { Command, InvalidArgumentError, Option } from 'commander';
import { BACKENDS, LR_SCHEDULERS, MERGE_DTYPES } from './choices.js';

function integer(min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < min)
      throw new InvalidArgumentError(`expected an integer >= ${min}.`);
    return n;
  };
}

function number(check: (n: number) => boolean, expected: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || !check(n))
      throw new InvalidArgumentError(`expected ${expected}.`);
    return n;
  };
}

const backendOption = () =>
  new Option('--backend <name>', 'TensorFlow.js backend (default: webgpu on a GPU, else wasm)').choices(
    BACKENDS,
  );
const verboseOption = () => new Option('--verbose', 'report the backend and timings on stderr');

/** A new `peft` program (a fresh one per run: commander keeps parsed state on the instance). */
export function createProgram(): Command {
  const program = new Command('peft')
    .description(
      'Parameter-efficient fine-tuning on TensorFlow.js: inspect and run Hugging Face checkpoints, train PEFT adapters and merge them.',
    )
    .option('--debug', 'print the stack trace of errors')
    .showSuggestionAfterError(true)
    .configureOutput({ outputError: () => {} }) // main.ts prints errors, one line each
    .exitOverride();

  program
    .command('inspect')
    .description(
      'show the config, tensors (names, dtypes, shapes) and parameter counts of a model folder, an adapter folder or a .safetensors file',
    )
    .argument('<path>', 'model folder, adapter folder or .safetensors file')
    .option('--json', 'print one JSON object instead of text')
    .action(async (path: string, options) =>
      (await import('./commands/inspect.js')).inspectCommand(path, options),
    );

  program
    .command('logits')
    .description('print the logits of token ids as one JSON object {"shape":[B,T,V],"data":[...]} on stdout')
    .requiredOption('--model <dir>', 'Hugging Face model folder (config.json + safetensors)')
    .option(
      '--adapter <dir>',
      'PEFT adapter folder to apply (adapter_config.json + adapter_model.safetensors)',
    )
    .requiredOption(
      '--ids <ids>',
      'token ids, comma-separated; rows separated by ";" (shorter rows are right-padded and masked)',
    )
    .addOption(backendOption())
    .addOption(verboseOption())
    .action(async (options) => (await import('./commands/logits.js')).logitsCommand(options));

  program
    .command('generate')
    .description('continue a prompt, streaming the new tokens to stdout')
    .requiredOption('--model <dir>', 'Hugging Face model folder')
    .option('--adapter <dir>', 'PEFT adapter folder to apply')
    .option('--prompt <text>', "prompt text, encoded with the model folder's tokenizer.json")
    .option('--ids <ids>', 'prompt as comma-separated token ids; the new ids are printed, comma-separated')
    .option('--tokenizer <dir>', 'folder with tokenizer.json (default: --model), or "byte" for UTF-8 bytes')
    .option('--max-new-tokens <n>', 'tokens to generate at most', integer(0), 32)
    .option(
      '--temperature <t>',
      'sample with this temperature (0: greedy)',
      number((n) => n >= 0, 'a number >= 0'),
    )
    .option('--top-k <k>', 'sample among the k most likely tokens', integer(1))
    .option(
      '--top-p <p>',
      'sample among the most likely tokens of total probability p',
      number((n) => n > 0 && n <= 1, 'a number in (0, 1]'),
    )
    .option('--seed <s>', 'seed of the sampler', integer(0))
    .option('--ignore-eos', 'keep going after the end-of-sequence token')
    .addOption(backendOption())
    .addOption(verboseOption())
    .action(async (options) => (await import('./commands/generate.js')).generateCommand(options));

  program
    .command('merge')
    .description('merge an adapter into the weights and write a Hugging Face model folder')
    .requiredOption('--model <dir>', 'Hugging Face model folder (the base model)')
    .requiredOption('--adapter <dir>', 'PEFT adapter folder trained on that model')
    .requiredOption('--out <dir>', 'folder to write (config.json, safetensors, tokenizer files)')
    .addOption(
      new Option(
        '--dtype <dtype>',
        "storage dtype of the weights (default: the base config's dtype)",
      ).choices(MERGE_DTYPES),
    )
    .option('--overwrite', 'write into a non-empty --out folder')
    .addOption(backendOption())
    .addOption(verboseOption())
    .action(async (options) => (await import('./commands/merge.js')).mergeCommand(options));

  program
    .command('train')
    .description(
      'train an adapter of a registered technique on a text file and save it as a PEFT adapter folder',
    )
    .requiredOption('--model <dir>', 'Hugging Face model folder (the base model, frozen)')
    .requiredOption(
      '--method <name>',
      'registered technique, e.g. lora (an unknown name lists the registered ones)',
    )
    .requiredOption('--data <file>', 'training text: a text file, or .jsonl with a "text" field per line')
    .requiredOption(
      '--out <dir>',
      'adapter folder to write (adapter_config.json + adapter_model.safetensors)',
    )
    .option('--config <file>', "the technique's config as JSON in PEFT's field names (adapter_config.json)")
    .option(
      '--set <key=value>',
      'a config field, e.g. --set r=8 --set \'target_modules=["c_attn"]\' (repeatable)',
      (v: string, all: string[]) => [...all, v],
      [] as string[],
    )
    .option('--tokenizer <dir>', 'folder with tokenizer.json (default: --model), or "byte" for UTF-8 bytes')
    .option('--steps <n>', 'optimizer steps', integer(1), 100)
    .option('--batch-size <n>', 'blocks per micro-batch', integer(1), 8)
    .option('--seq-len <n>', 'tokens per block', integer(2), 128)
    .option('--gradient-accumulation-steps <n>', 'micro-batches per optimizer step', integer(1), 1)
    .option(
      '--lr <rate>',
      'AdamW learning rate',
      number((n) => n > 0, 'a number > 0'),
      2e-4,
    )
    .option(
      '--weight-decay <w>',
      'AdamW decoupled weight decay (biases and norms excluded)',
      number((n) => n >= 0, 'a number >= 0'),
      0,
    )
    .addOption(
      new Option('--lr-scheduler <name>', 'learning-rate schedule after the warm-up')
        .choices(LR_SCHEDULERS)
        .default('linear'),
    )
    .option('--warmup-steps <n>', 'steps of linear warm-up', integer(0), 0)
    .option(
      '--max-grad-norm <n>',
      'clip the global gradient norm (0: no clipping)',
      number((n) => n >= 0, 'a number >= 0'),
      1,
    )
    .option('--seed <s>', 'seed of the adapter initialisation, dropout and data order', integer(0), 42)
    .option(
      '--threads <n>',
      'threads that train: each batch split over this one and worker threads, each with its own copy of the model, gradients averaged (default: every core whose copy fits in 1 GiB; 1 on webgpu)',
      integer(1),
    )
    .option('--log-every <n>', 'steps between log lines when stderr is not a terminal', integer(1), 10)
    .option('--overwrite', 'write into a non-empty --out folder')
    .addOption(backendOption())
    .addOption(verboseOption())
    .action(async (options) => (await import('./commands/train.js')).trainCommand(options));

  return program;
}
