// The page's side of the worker: requests as promises, events to a callback.
import type { Control, ErrorInfo, Request, RequestMessage, ResultOf, WorkerEvent } from './protocol.js';

/** An error the worker reported, with its classification for the page. */
export class WorkerError extends Error {
  override readonly name = 'WorkerError';

  constructor(readonly info: ErrorInfo) {
    super(info.message);
  }
}

type Pending = { resolve(value: unknown): void; reject(error: unknown): void };

export class WorkerClient {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;

  /**
   * @param onEvent progress, samples and state changes
   * @param onError errors that belong to no request (the worker failed to start, a lost GPU device)
   */
  constructor(onEvent: (event: WorkerEvent) => void, onError: (error: ErrorInfo) => void) {
    this.#worker = new Worker(new URL('./worker.ts', import.meta.url), {
      type: 'module',
      name: 'peft-training',
    });
    this.#worker.addEventListener('message', (message: MessageEvent<WorkerEvent>) => {
      const event = message.data;
      if (event.type === 'result' || (event.type === 'error' && event.id !== null)) {
        const pending = this.#pending.get(event.id!);
        this.#pending.delete(event.id!);
        if (event.type === 'result') pending?.resolve(event.value);
        else pending?.reject(new WorkerError(event.error));
        return;
      }
      if (event.type === 'error') onError(event.error);
      else onEvent(event);
    });
    this.#worker.addEventListener('error', (event) => {
      event.preventDefault();
      const error: ErrorInfo = {
        message: `The training worker failed: ${event.message || 'it could not be started'}`,
        kind: 'internal',
        hint: 'Reload the page; if it persists, try another backend or browser.',
      };
      onError(error);
      for (const pending of this.#pending.values()) pending.reject(new WorkerError(error));
      this.#pending.clear();
    });
  }

  call<T extends Request['type']>(
    request: Extract<Request, { type: T }>,
    transfer: Transferable[] = [],
  ): Promise<ResultOf<T>> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.#worker.postMessage({ ...request, id } as RequestMessage, transfer);
    });
  }

  control(type: Control['type']): void {
    this.#worker.postMessage({ type } satisfies Control);
  }

  terminate(): void {
    this.#worker.terminate();
    const error = new WorkerError({ message: 'the worker was restarted', kind: 'internal' });
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
  }
}
