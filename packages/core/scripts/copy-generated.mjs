// Copies src/generated/ (made by bundle-gradients.mjs; tsc does not emit plain .js sources) to
// dist/generated/, so that dist/backend/register_gradients.js finds ../generated/tfjs_gradients.js.
import { cp, readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const from = path.join(packageRoot, 'src', 'generated');
const to = path.join(packageRoot, 'dist', 'generated');

const files = await readdir(from).catch(() => {
  throw new Error(
    `${path.relative(packageRoot, from)} is missing: run \`node scripts/bundle-gradients.mjs\` first`,
  );
});
await cp(from, to, { recursive: true });
console.log(`copy-generated: ${files.join(', ')} -> ${path.relative(packageRoot, to)}`);
