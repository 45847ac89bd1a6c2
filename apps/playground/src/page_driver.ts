// Driving the built page in a real browser (Node side): the page built once with vite and served
// on 127.0.0.1 (with or without the cross-origin isolation headers), Debian's Chromium through
// playwright-core, and the few interactions a run needs. Used by the end-to-end tests and by the
// threads measurement (`thread_speed.ts`).
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { build, type PreviewServer, preview } from 'vite';

const APP = fileURLToPath(new URL('..', import.meta.url));
export const CHROMIUM = process.env.PEFT_CHROMIUM ?? '/usr/bin/chromium';
/** platform.md's flags for Chromium as root in a container, plus WebGPU over SwiftShader. */
const CHROMIUM_FLAGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu-sandbox',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
  '--enable-unsafe-webgpu',
  '--ignore-gpu-blocklist',
  '--enable-features=Vulkan',
  '--use-webgpu-adapter=swiftshader',
  '--use-angle=swiftshader',
];

export const haveChromium = existsSync(CHROMIUM);

export interface ServedPlayground {
  /** The page with COOP/COEP (cross-origin isolated: threaded WASM possible). */
  url: string;
  /** The same build without them. */
  plainUrl: string;
  browser: Browser;
  close(): Promise<void>;
}

/** Builds the page into a temporary folder, serves it both ways and starts Chromium. */
export async function servePlayground(): Promise<ServedPlayground> {
  const work = await mkdtemp(join(tmpdir(), 'peft-playground-page-'));
  const outDir = join(work, 'dist');
  const configFile = join(APP, 'vite.config.ts');
  const servers: PreviewServer[] = [];
  let browser: Browser | undefined;
  const close = async () => {
    await browser?.close();
    for (const server of servers) await server.close();
    await rm(work, { recursive: true, force: true });
  };
  try {
    await build({ root: APP, configFile, logLevel: 'warn', build: { outDir, emptyOutDir: true } });
    const serve = async (withHeaders: boolean) => {
      const server = await preview({
        root: APP,
        configFile: withHeaders ? configFile : false,
        logLevel: 'warn',
        build: { outDir },
        preview: { host: '127.0.0.1', port: 0, strictPort: false, open: false },
      });
      servers.push(server);
      return server.resolvedUrls!.local[0]!;
    };
    const url = await serve(true);
    const plainUrl = await serve(false);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS });
    return { url, plainUrl, browser, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Waits until the page is idle (or failed). */
export async function idle(page: Page, timeout = 200_000): Promise<void> {
  await page.waitForFunction(() => ['idle', 'failed'].includes(document.body.dataset.state ?? ''), null, {
    timeout,
    polling: 100,
  });
}

/** Fills inputs by id. */
export async function fillSettings(page: Page, values: Record<string, string>): Promise<void> {
  for (const [id, value] of Object.entries(values)) await page.fill(`#${id}`, value);
}

/**
 * Clicks Train and waits for the run to end. That it started is seen by a MutationObserver set
 * before the click: a short run can go from idle through training back to idle between two polls
 * of the state (on a loaded machine a poll for "not idle" once waited for 240 s that way).
 */
export async function train(page: Page): Promise<void> {
  await page.evaluate(() => {
    const started = new Promise<void>((resolve) => {
      const observer = new MutationObserver(() => {
        observer.disconnect();
        resolve();
      });
      observer.observe(document.body, { attributes: true, attributeFilter: ['data-state'] });
    });
    (window as unknown as { trainStarted: Promise<void> }).trainStarted = started;
  });
  await page.click('#train');
  await page.evaluate(() => (window as unknown as { trainStarted: Promise<void> }).trainStarted);
  await idle(page);
}

/** The training steps the page logged: loss and tokens per second of each. */
export async function steps(page: Page): Promise<{ loss: number; tokensPerSecond: number }[]> {
  return page.$$eval('#step-log li', (items) =>
    items.map((item) => ({
      loss: Number((item as HTMLElement).dataset.loss),
      tokensPerSecond: Number((item as HTMLElement).dataset.tokensPerSecond),
    })),
  );
}

/** The error cards the page shows. */
export async function errorCards(page: Page): Promise<{ kind: string; text: string }[]> {
  return page.$$eval('#errors .error', (cards) =>
    cards.map((card) => ({
      kind: (card as HTMLElement).dataset.kind ?? '',
      text: card.querySelector('.message')?.textContent ?? '',
    })),
  );
}
