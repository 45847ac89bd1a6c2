import { defaultClientConditions, defineConfig } from 'vite';

/**
 * Cross-origin isolation (COOP + COEP): it gives the page SharedArrayBuffer, which the threaded
 * WASM backend needs. Every resource of the page is same-origin, so `require-corp` blocks nothing.
 */
export const CROSS_ORIGIN_ISOLATION = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
} as const;

export default defineConfig({
  // Relative URLs: the built page works from any folder of any static server (with the headers above).
  base: './',
  resolve: {
    // The workspace packages from their TypeScript sources: no build of them needed first.
    conditions: ['peft-source', ...defaultClientConditions],
  },
  worker: {
    // A module worker: the backends are imported on demand (code splitting needs ES modules).
    format: 'es',
    rolldownOptions: {
      checks: { bundlerTimings: false },
      output: {
        // Not minified: tfjs-backend-wasm starts its threads from the *source text* of its Emscripten
        // factory (`factory.toString()` in a Blob), which breaks when the minifier renames the names it
        // shares with its closure or drops its `typeof` guards ("e is not defined" in the threads).
        minify: false,
      },
    },
  },
  build: {
    target: 'es2022',
    // The base model, the .wasm binaries and the data sets are files, never inlined.
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 4096,
    // No "plugin X took N s" advice when the build shares a busy machine.
    rolldownOptions: { checks: { bundlerTimings: false } },
  },
  optimizeDeps: {
    // Everything the worker imports, pre-bundled up front (else the dev server finds them only when
    // the worker starts, and reloads the page).
    include: [
      '@tensorflow/tfjs-core',
      '@tensorflow/tfjs-backend-cpu',
      '@tensorflow/tfjs-backend-wasm',
      '@tensorflow/tfjs-backend-webgpu',
      '@peft/models > @huggingface/tokenizers',
      '@peft/core > zod',
      'chart.js',
      'fflate',
    ],
  },
  server: { headers: CROSS_ORIGIN_ISOLATION },
  preview: { headers: CROSS_ORIGIN_ISOLATION },
});
