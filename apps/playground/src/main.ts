// The page: settings, buttons and views. All model work happens in the worker (worker.ts).
import type { BackendReport } from '@peft/core';
import wasmPlainUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimdUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreadedUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import baseConfigUrl from '../../bench/base-model/config.json?url';
import baseWeightsUrl from '../../bench/base-model/model.safetensors?url';
import { LossChart } from './chart.js';
import { WorkerClient, WorkerError } from './client.js';
import mobyDick from './data/moby-dick-135.txt?raw';
import sotu1790 from './data/sotu-1790.txt?raw';
import { describeError } from './errors.js';
import type {
  BackendChoice,
  ErrorInfo,
  ModelInfo,
  ModelSourceMessage,
  SampleSettings,
  TrainSettings,
  WorkerEvent,
} from './protocol.js';
import { TECHNIQUES, techniqueConfig, techniqueInfo } from './techniques.js';

/** A small untrained GPT-2 built in the worker: fast enough for quick tries on any backend. */
const TINY_RANDOM_GPT2 = {
  model_type: 'gpt2',
  vocab_size: 256,
  n_embd: 64,
  n_layer: 2,
  n_head: 4,
  n_positions: 128,
  embd_pdrop: 0,
  resid_pdrop: 0,
  attn_pdrop: 0,
};

const DATASETS: Record<string, { label: string; text: string }> = {
  'moby-dick': {
    label: 'Moby-Dick, ch. 135 and Epilogue (unseen by the base model)',
    text: mobyDick,
  },
  sotu: { label: 'State of the Union, Washington, 1790', text: sotu1790 },
  custom: { label: 'my own text', text: '' },
};

// ---- elements ----------------------------------------------------------------------------------
function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`missing #${id}`);
  return element as T;
}
const el = {
  backendChoice: $<HTMLSelectElement>('backend-choice'),
  threads: $<HTMLInputElement>('threads'),
  backend: $('backend'),
  isolation: $('isolation'),
  backendReport: $('backend-report'),
  errors: $('errors'),
  modelFolder: $<HTMLInputElement>('model-folder'),
  loadModel: $<HTMLButtonElement>('load-model'),
  modelInfo: $('model-info'),
  technique: $<HTMLSelectElement>('technique'),
  techniqueSummary: $('technique-summary'),
  techniqueFields: $('technique-fields'),
  lr: $<HTMLInputElement>('lr'),
  steps: $<HTMLInputElement>('steps'),
  batchSize: $<HTMLInputElement>('batch-size'),
  seqLen: $<HTMLInputElement>('seq-len'),
  warmup: $<HTMLInputElement>('warmup'),
  seed: $<HTMLInputElement>('seed'),
  trainThreads: $<HTMLInputElement>('train-threads'),
  dataset: $<HTMLSelectElement>('dataset'),
  textFile: $<HTMLInputElement>('text-file'),
  textInfo: $('text-info'),
  text: $<HTMLTextAreaElement>('text'),
  train: $<HTMLButtonElement>('train'),
  pause: $<HTMLButtonElement>('pause'),
  stop: $<HTMLButtonElement>('stop'),
  status: $('status'),
  statStep: $('stat-step'),
  statLoss: $('stat-loss'),
  statTps: $('stat-tps'),
  statThreads: $('stat-threads'),
  statTrainable: $('stat-trainable'),
  stepLog: $('step-log'),
  prompt: $<HTMLInputElement>('prompt'),
  maxNewTokens: $<HTMLInputElement>('max-new-tokens'),
  temperature: $<HTMLInputElement>('temperature'),
  generate: $<HTMLButtonElement>('generate'),
  sampleAround: $<HTMLInputElement>('sample-around-training'),
  sampleBefore: $('sample-before'),
  sampleAfter: $('sample-after'),
  sampleNow: $('sample-now'),
  sampleNowCaption: $('sample-now-caption'),
  download: $<HTMLButtonElement>('download'),
  adapterFile: $<HTMLInputElement>('adapter-file'),
  adapterInfo: $('adapter-info'),
  log: $('log'),
};
const chart = new LossChart($<HTMLCanvasElement>('loss-chart'));

// ---- state -------------------------------------------------------------------------------------
type PageState = 'starting' | 'failed' | 'idle' | 'loading' | 'training' | 'paused' | 'busy';
let state: PageState = 'starting';
let client: WorkerClient | undefined;
let model: ModelInfo | undefined;
let modelSource: ModelSourceMessage | undefined;
/** What the current model carries: nothing, a trained adapter, or a loaded one. */
let adapter: string | null = null;
let generating = false;
let tokensSeen = 0;
let secondsSeen = 0;

function setState(next: PageState): void {
  state = next;
  document.body.dataset.state = next;
  const idle = state === 'idle';
  const running = state === 'training' || state === 'paused';
  el.loadModel.disabled = !idle;
  el.modelFolder.disabled = !idle;
  el.backendChoice.disabled = !(idle || state === 'failed');
  el.threads.disabled = !(idle || state === 'failed');
  el.train.disabled = !(idle && model);
  el.pause.disabled = !running;
  el.pause.textContent = state === 'paused' ? 'Resume' : 'Pause';
  el.stop.disabled = !running;
  el.generate.disabled = !((idle || state === 'paused') && model) || generating;
  el.download.disabled = !((idle || state === 'paused') && adapter);
  el.adapterFile.disabled = !(idle && model);
}

function log(message: string): void {
  const time = new Date().toLocaleTimeString();
  el.log.textContent += `${time} ${message}\n`;
}

function showError(error: ErrorInfo | unknown): void {
  const info: ErrorInfo =
    error instanceof WorkerError
      ? error.info
      : typeof error === 'object' && error !== null && 'kind' in error && 'message' in error
        ? (error as ErrorInfo)
        : describeError(error);
  log(`error (${info.kind}): ${info.message}`);
  const card = document.createElement('div');
  card.className = 'error';
  card.dataset.kind = info.kind;
  const dismiss = document.createElement('button');
  dismiss.className = 'dismiss';
  dismiss.type = 'button';
  dismiss.textContent = '×';
  dismiss.title = 'dismiss';
  dismiss.addEventListener('click', () => card.remove());
  const message = document.createElement('div');
  message.className = 'message';
  message.textContent = info.message;
  card.append(dismiss, message);
  if (info.hint) {
    const hint = document.createElement('div');
    hint.className = 'hint';
    hint.textContent = info.hint;
    card.append(hint);
  }
  if (info.detail) {
    const details = document.createElement('details');
    const summary = document.createElement('summary');
    summary.textContent = 'details';
    const pre = document.createElement('pre');
    pre.textContent = info.detail;
    details.append(summary, pre);
    card.append(details);
  }
  el.errors.append(card);
}

function number(input: HTMLInputElement, name: string): number {
  const value = Number(input.value);
  if (input.value.trim() === '' || !Number.isFinite(value))
    throw new WorkerError({ message: `${name} must be a number`, kind: 'input' });
  return value;
}

function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

// ---- backend -----------------------------------------------------------------------------------
function absolute(url: string): string {
  return new URL(url, document.baseURI).href;
}

function backendLabel(report: BackendReport): string {
  switch (report.backend) {
    case 'webgpu':
      return `WebGPU (${report.reason.replace(/^(software )?adapter: /, '')})`;
    case 'wasm': {
      const threaded = /threaded build/.test(report.reason);
      const threads = report.threads === 1 ? '1 thread' : `${report.threads} threads`;
      // Relaxed SIMD: core's GEMM multiply-adds in one instruction (it runs single-threaded only).
      const simd = report.simd ? (report.relaxedSimd ? ' SIMD (relaxed)' : ' SIMD') : '';
      return `WASM${simd}, ${threaded ? `threaded (${threads})` : 'single-threaded'}`;
    }
    case 'cpu':
      return 'cpu (plain JavaScript)';
  }
}

async function startWorker(): Promise<void> {
  client?.terminate();
  model = undefined;
  adapter = null;
  setState('starting');
  el.backend.textContent = 'starting…';
  el.backend.dataset.backend = '';
  const threads = el.threads.value.trim() === '' ? undefined : Number(el.threads.value);
  const current = new WorkerClient(onEvent, (error) => {
    showError(error);
    if (state === 'starting') setState('failed');
  });
  client = current;
  try {
    const { report, text } = await current.call({
      type: 'init',
      backend: el.backendChoice.value as BackendChoice,
      ...(threads !== undefined && Number.isInteger(threads) && threads > 0 ? { threads } : {}),
      wasmPaths: {
        'tfjs-backend-wasm.wasm': absolute(wasmPlainUrl),
        'tfjs-backend-wasm-simd.wasm': absolute(wasmSimdUrl),
        'tfjs-backend-wasm-threaded-simd.wasm': absolute(wasmThreadedUrl),
      },
    });
    if (client !== current) return;
    el.backend.textContent = backendLabel(report);
    el.backend.dataset.backend = report.backend;
    el.backendReport.textContent = text;
    log(text);
  } catch (error) {
    if (client !== current) return;
    el.backend.textContent = 'no backend';
    showError(error);
    setState('failed');
    return;
  }
  setState('idle');
  if (modelSource) await loadModel(modelSource);
}

// ---- model -------------------------------------------------------------------------------------
/** The top-level files of a folder picked with webkitdirectory, by name, and the folder's name. */
function folderFiles(list: FileList): { label: string; files: Record<string, File> } {
  const files: Record<string, File> = {};
  let label = 'model folder';
  for (const file of Array.from(list)) {
    const parts = (file.webkitRelativePath || file.name).split('/');
    if (parts.length > 2) continue; // subfolders (.git, onnx/, ...) are not part of the checkpoint
    if (parts.length === 2) label = parts[0]!;
    files[parts[parts.length - 1]!] = file;
  }
  return { label, files };
}

function chosenSource(): ModelSourceMessage {
  const choice = (document.querySelector('input[name="model"]:checked') as HTMLInputElement | null)?.value;
  if (choice === 'tiny') return { kind: 'random', label: 'tiny-random-gpt2', config: TINY_RANDOM_GPT2 };
  if (choice === 'folder') {
    const list = el.modelFolder.files;
    if (!list || list.length === 0) {
      throw new WorkerError({ message: 'choose a Hugging Face model folder first', kind: 'input' });
    }
    return { kind: 'files', ...folderFiles(list) };
  }
  return {
    kind: 'urls',
    label: 'peft-playground-base',
    urls: { 'config.json': absolute(baseConfigUrl), 'model.safetensors': absolute(baseWeightsUrl) },
  };
}

async function loadModel(source: ModelSourceMessage): Promise<void> {
  if (!client) return;
  setState('loading');
  el.modelInfo.textContent = `loading ${source.label}…`;
  try {
    const info = await client.call({ type: 'load-model', source });
    model = info;
    modelSource = source;
    adapter = null;
    el.modelInfo.textContent =
      `${info.label}: ${info.modelType}, ${info.layers} layers × ${info.hiddenSize}, ` +
      `${formatCount(info.parameters)} parameters, vocabulary ${info.vocabSize} ` +
      `(${info.tokenizer === 'bytes' ? 'bytes' : 'tokenizer.json'}), context ${info.positions}`;
    el.adapterInfo.textContent = '';
    el.status.textContent = 'ready to train';
    if (info.positions > 0 && Number(el.seqLen.value) > info.positions)
      el.seqLen.value = String(Math.min(64, info.positions));
    log(`loaded ${el.modelInfo.textContent}`);
  } catch (error) {
    el.modelInfo.textContent = model ? `still ${model.label}` : 'no model loaded';
    showError(error);
  } finally {
    setState('idle');
  }
}

// ---- technique ---------------------------------------------------------------------------------
function renderTechnique(): void {
  const technique = techniqueInfo(el.technique.value);
  el.techniqueSummary.textContent = technique.summary;
  el.lr.value = String(technique.lr);
  el.techniqueFields.replaceChildren(
    ...technique.fields.map((field) => {
      const label = document.createElement('label');
      label.title = field.help;
      const input = document.createElement('input');
      input.dataset.key = field.key;
      input.id = `field-${field.key}`;
      if (field.kind === 'bool') {
        label.className = 'checkbox';
        input.type = 'checkbox';
        input.checked = field.default === true;
        label.append(input, ` ${field.label}`);
        return label;
      }
      input.type = field.kind === 'list' ? 'text' : 'number';
      if (field.kind === 'list') input.placeholder = 'default';
      if (field.min !== undefined) input.min = String(field.min);
      if (field.max !== undefined) input.max = String(field.max);
      input.step = field.kind === 'int' ? '1' : String(field.step ?? 'any');
      input.value = String(field.default);
      label.append(`${field.label} `, input);
      if (field.kind === 'list') label.classList.add('wide');
      return label;
    }),
  );
}

function trainSettings(): TrainSettings {
  const values: Record<string, string | boolean> = {};
  for (const input of Array.from(el.techniqueFields.querySelectorAll('input'))) {
    values[input.dataset.key!] = input.type === 'checkbox' ? input.checked : input.value;
  }
  return {
    technique: el.technique.value,
    config: techniqueConfig(el.technique.value, values),
    lr: number(el.lr, 'the learning rate'),
    steps: number(el.steps, 'steps'),
    batchSize: number(el.batchSize, 'the batch size'),
    seqLen: number(el.seqLen, 'the sequence length'),
    warmupSteps: number(el.warmup, 'warm-up steps'),
    weightDecay: 0,
    maxGradNorm: 1,
    seed: number(el.seed, 'the seed'),
    ...(el.trainThreads.value.trim() === '' ? {} : { threads: number(el.trainThreads, 'training threads') }),
  };
}

function sampleSettings(): SampleSettings {
  return {
    prompt: el.prompt.value,
    maxNewTokens: number(el.maxNewTokens, 'new tokens'),
    temperature: number(el.temperature, 'the temperature'),
    seed: number(el.seed, 'the seed'),
  };
}

function showSample(target: HTMLElement, prompt: string, text: string): void {
  const strong = document.createElement('strong');
  strong.textContent = prompt;
  target.replaceChildren(strong, text);
}

// ---- training ----------------------------------------------------------------------------------
let lastSample: SampleSettings | null = null;

async function train(): Promise<void> {
  if (!client || !model) return;
  let settings: TrainSettings;
  try {
    settings = trainSettings();
    lastSample = el.sampleAround.checked ? sampleSettings() : null;
  } catch (error) {
    showError(error);
    return;
  }
  chart.clear();
  el.stepLog.replaceChildren();
  el.sampleBefore.textContent = '';
  el.sampleAfter.textContent = '';
  el.statStep.textContent = '–';
  el.statLoss.textContent = '–';
  el.statTps.textContent = '–';
  el.statThreads.textContent = '–';
  tokensSeen = 0;
  secondsSeen = 0;
  setState('training');
  el.status.textContent = lastSample ? 'sampling before training…' : 'starting…';
  try {
    const end = await client.call({ type: 'train', settings, text: el.text.value, sample: lastSample });
    const losses =
      end.firstLoss !== null && end.lastLoss !== null
        ? `, loss ${end.firstLoss.toFixed(3)} → ${end.lastLoss.toFixed(3)}`
        : '';
    el.status.textContent = `${end.reason === 'done' ? 'done' : 'stopped'}: ${end.steps} steps in ${end.seconds.toFixed(1)} s${losses}`;
    log(el.status.textContent);
  } catch (error) {
    el.status.textContent = 'training failed';
    showError(error);
  } finally {
    setState('idle');
  }
}

function onEvent(event: WorkerEvent): void {
  switch (event.type) {
    case 'train-start': {
      const start = event.value;
      adapter = start.technique;
      el.statTrainable.textContent = formatCount(start.trainable);
      el.status.textContent = `training ${start.technique}…`;
      el.statThreads.textContent = String(start.threads);
      log(
        `${start.summary}; ${start.blocks} blocks (${start.tokens} tokens); ` +
          (start.threads === 1 ? '1 thread' : `${start.threads} threads (replica workers)`),
      );
      break;
    }
    case 'step': {
      const s = event.value;
      chart.add(s.step, s.loss);
      tokensSeen += s.tokens;
      secondsSeen += s.seconds;
      el.statStep.textContent = `${s.step} / ${s.steps}`;
      el.statLoss.textContent = s.loss.toFixed(4);
      el.statTps.textContent = `${s.tokensPerSecond.toFixed(0)} (mean ${(tokensSeen / secondsSeen).toFixed(0)})`;
      if (state === 'training') el.status.textContent = `training: step ${s.step} of ${s.steps}`;
      const item = document.createElement('li');
      item.dataset.loss = String(s.loss);
      item.dataset.tokensPerSecond = String(s.tokensPerSecond);
      item.textContent = `loss ${s.loss.toFixed(4)}, ${s.tokensPerSecond.toFixed(0)} tokens/s, ${(s.seconds * 1000).toFixed(0)} ms, grad norm ${s.gradNorm.toFixed(3)}`;
      el.stepLog.append(item);
      break;
    }
    case 'state':
      if (event.value === 'paused') {
        setState('paused');
        el.status.textContent = 'paused';
      } else if (event.value === 'training') {
        setState('training');
      }
      break;
    case 'sample': {
      const prompt = event.phase === 'now' ? el.prompt.value : (lastSample?.prompt ?? '');
      const target =
        event.phase === 'before' ? el.sampleBefore : event.phase === 'after' ? el.sampleAfter : el.sampleNow;
      showSample(target, prompt, event.text);
      if (event.done) target.dataset.done = 'true';
      else delete target.dataset.done;
      if (event.phase === 'after' && !event.done) el.status.textContent = 'sampling after training…';
      break;
    }
    case 'log':
      log(event.message);
      break;
  }
}

async function generateNow(): Promise<void> {
  if (!client) return;
  let sample: SampleSettings;
  try {
    sample = sampleSettings();
  } catch (error) {
    showError(error);
    return;
  }
  generating = true;
  setState(state);
  el.sampleNow.textContent = '';
  delete el.sampleNow.dataset.done;
  el.sampleNowCaption.textContent = adapter ? `now (with the ${adapter} adapter)` : 'now (base model)';
  try {
    await client.call({ type: 'generate', sample });
  } catch (error) {
    showError(error);
  } finally {
    generating = false;
    setState(state);
  }
}

// ---- adapter files -----------------------------------------------------------------------------
async function download(): Promise<void> {
  if (!client) return;
  try {
    const zip = await client.call({ type: 'export-adapter' });
    const url = URL.createObjectURL(
      new Blob([zip.bytes as Uint8Array<ArrayBuffer>], { type: 'application/zip' }),
    );
    const link = document.createElement('a');
    link.href = url;
    link.download = zip.fileName;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    el.adapterInfo.textContent = `downloaded ${zip.fileName}: ${zip.description}`;
    log(el.adapterInfo.textContent);
  } catch (error) {
    showError(error);
  }
}

async function loadAdapter(list: FileList): Promise<void> {
  if (!client || list.length === 0) return;
  const files: Record<string, File> = {};
  for (const file of Array.from(list)) files[file.name] = file;
  setState('busy');
  el.adapterInfo.textContent = 'loading the adapter…';
  try {
    const info = await client.call({ type: 'load-adapter', files });
    adapter = info.technique;
    el.adapterInfo.textContent = `loaded a ${info.peftType} adapter (${info.technique}): ${info.tensors} tensors, ${formatCount(info.parameters)} parameters, on a fresh copy of the base model`;
    el.status.textContent = 'adapter loaded: generate to try it';
    log(el.adapterInfo.textContent);
  } catch (error) {
    el.adapterInfo.textContent = adapter ? '' : 'no adapter';
    showError(error);
  } finally {
    setState('idle');
  }
}

// ---- wiring ------------------------------------------------------------------------------------
function setText(text: string): void {
  el.text.value = text;
  el.textInfo.textContent = `${text.length.toLocaleString()} characters`;
}

function init(): void {
  for (const technique of TECHNIQUES) el.technique.add(new Option(technique.label, technique.name));
  for (const [key, dataset] of Object.entries(DATASETS)) el.dataset.add(new Option(dataset.label, key));
  renderTechnique();
  setText(DATASETS['moby-dick']!.text);

  // Query parameters preset the choices: ?backend=webgpu&model=tiny&technique=vera
  const params = new URLSearchParams(location.search);
  const backend = params.get('backend');
  if (backend && ['auto', 'webgpu', 'wasm', 'cpu'].includes(backend)) el.backendChoice.value = backend;
  const threads = params.get('threads');
  if (threads) el.threads.value = threads;
  const trainThreads = params.get('trainThreads');
  if (trainThreads) el.trainThreads.value = trainThreads;
  const modelChoice = params.get('model');
  const radio = document.querySelector<HTMLInputElement>(`input[name="model"][value="${modelChoice}"]`);
  if (radio && modelChoice !== 'folder') radio.checked = true;
  const technique = params.get('technique');
  if (technique && TECHNIQUES.some((t) => t.name === technique)) {
    el.technique.value = technique;
    renderTechnique();
  }

  el.isolation.textContent = crossOriginIsolated
    ? 'cross-origin isolated'
    : 'not cross-origin isolated: WASM runs single-threaded';
  el.isolation.dataset.isolated = String(crossOriginIsolated);

  el.backendChoice.addEventListener('change', () => void startWorker());
  el.threads.addEventListener('change', () => void startWorker());
  el.technique.addEventListener('change', renderTechnique);
  el.loadModel.addEventListener('click', () => {
    try {
      void loadModel(chosenSource());
    } catch (error) {
      showError(error);
    }
  });
  el.modelFolder.addEventListener('change', () => {
    if (!el.modelFolder.files?.length) return;
    document.querySelector<HTMLInputElement>('input[name="model"][value="folder"]')!.checked = true;
    try {
      void loadModel(chosenSource());
    } catch (error) {
      showError(error);
    }
  });
  el.dataset.addEventListener('change', () => {
    if (el.dataset.value !== 'custom') setText(DATASETS[el.dataset.value]!.text);
  });
  el.text.addEventListener('input', () => {
    el.dataset.value = 'custom';
    el.textInfo.textContent = `${el.text.value.length.toLocaleString()} characters`;
  });
  el.textFile.addEventListener('change', async () => {
    const file = el.textFile.files?.[0];
    if (!file) return;
    try {
      const text = new TextDecoder('utf-8', { fatal: true }).decode(await file.arrayBuffer());
      el.dataset.value = 'custom';
      setText(text);
    } catch {
      showError({
        message: `${file.name} is not UTF-8 text`,
        kind: 'file',
        hint: 'Upload a plain text file.',
      });
    } finally {
      el.textFile.value = '';
    }
  });
  el.train.addEventListener('click', () => void train());
  el.pause.addEventListener('click', () => client?.control(state === 'paused' ? 'resume' : 'pause'));
  el.stop.addEventListener('click', () => {
    client?.control('stop');
    el.status.textContent = 'stopping after this step…';
  });
  el.generate.addEventListener('click', () => void generateNow());
  el.download.addEventListener('click', () => void download());
  el.adapterFile.addEventListener('change', () => {
    const list = el.adapterFile.files;
    if (list) void loadAdapter(list).finally(() => (el.adapterFile.value = ''));
  });
  window.addEventListener('error', (event) => showError(event.error ?? event.message));
  window.addEventListener('unhandledrejection', (event) => showError(event.reason));

  setState('starting');
  try {
    modelSource = chosenSource();
  } catch (error) {
    showError(error);
  }
  void startWorker();
}

init();
