// Bundles tfjs-core's gradient definitions into src/generated/tfjs_gradients.js.
//
// Why: tfjs-core's Node bundle (its CJS `main`) registers no gradients, and its ESM
// `dist/register_all_gradients.js` cannot be imported by plain Node (extensionless relative imports).
// What: the gradient files themselves (dist/gradients/*.js, dist/register_all_gradients.js) are bundled;
// every other tfjs-core module they import ('../ops/mul', '../kernel_names', '../engine', ...) becomes
// a small virtual module that re-exports the same names from the PUBLIC `@tensorflow/tfjs-core` entry,
// which stays external. At runtime there is one copy of tfjs-core: one engine, one kernel/gradient
// registry, one set of ops. The registration loop of register_all_gradients.js is replaced by an export
// of its config list, so that `registerAllGradients()` (src/backend/register_gradients.ts) decides when
// and what to register.
//
// A few ops used only by gradients (maxPoolGrad, avgPoolGrad, conv3DBackpropFilter, ...) are not on the
// public API; their op files are stateless wrappers around `ENGINE.runKernel`, so they are bundled too,
// with their own imports mapped to the public entry the same way. The script fails if any stateful
// module (engine, registries, environment, tensor) would end up in the bundle.

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(packageRoot, 'package.json'));
const TFJS_CORE = '@tensorflow/tfjs-core';
const tfjsDist = path.join(path.dirname(require.resolve(`${TFJS_CORE}/package.json`)), 'dist');
const entry = path.join(tfjsDist, 'register_all_gradients.js');
const outDir = path.join(packageRoot, 'src', 'generated');
const outFile = path.join(outDir, 'tfjs_gradients.js');
const EXPORT_NAME = 'tfjsGradientConfigs';

/** The public API, loaded once to check that every name we map exists there. */
const tf = require(TFJS_CORE);

/** tfjs-core modules that hold state: bundling any of them would make a second engine or registry. */
const STATEFUL_MODULES = new Set([
  'engine',
  'kernel_registry',
  'environment',
  'global_util',
  'tensor',
  'flags',
  'base',
  'index',
]);

/** Modules (relative to dist, no extension) that are always bundled as source. */
function isGradientModule(rel) {
  return rel === 'register_all_gradients' || rel.startsWith('gradients/');
}

/** Where the names of a tfjs-core internal module live on the public API, in lookup order. */
function publicRoots(rel) {
  if (rel === 'util' || rel === 'util_base') return [['tf.util', tf.util]];
  const base = path.posix.basename(rel);
  if (base.endsWith('_util')) {
    const roots = [];
    if (tf[base] && typeof tf[base] === 'object') roots.push([`tf.${base}`, tf[base]]);
    roots.push(['tf.backend_util', tf.backend_util]);
    return roots;
  }
  return [['tf', tf]];
}

/** Names an importer takes from one import clause: `{ a, b as c }` or `* as ns` (then `ns.x` uses). */
function importedNames(clause, importerSource) {
  const named = clause.match(/^\{([^}]*)\}$/);
  if (named) {
    return named[1]
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .map((s) => s.split(/\s+as\s+/)[0].trim());
  }
  const namespace = clause.match(/^\*\s+as\s+(\w+)$/);
  if (namespace) {
    const uses = importerSource.matchAll(new RegExp(`\\b${namespace[1]}\\.(\\w+)`, 'g'));
    return [...new Set([...uses].map((m) => m[1]))];
  }
  throw new Error(`unsupported import clause: ${clause}`);
}

/**
 * Internal helpers with no public twin, written against the public API. Gradient code only ever passes
 * tensors to the gradient-only ops, so their `convertToTensor` reduces to a check.
 */
const SHIMS = {
  engine: { ENGINE: 'tf.engine()' },
  tensor_util_env: {
    convertToTensor: `(x, argName, functionName) => {
  if (x instanceof tf.Tensor) return x;
  throw new Error(\`Argument '\${argName}' passed to '\${functionName}' must be a Tensor\`);
}`,
  },
};

/** JS expression for `name` on the public API, or undefined when it is not public. */
function publicExpression(rel, name) {
  const shim = SHIMS[rel]?.[name];
  if (shim) return shim;
  for (const [expr, root] of publicRoots(rel)) {
    if (root && root[name] !== undefined) return `${expr}.${name}`;
  }
  return undefined;
}

const bundledSources = new Set();
const publicModules = new Map(); // rel -> Set of names
const ALLOWED_IMPORT = /^import\s+(\{[^}]*\}|\*\s+as\s+\w+)\s+from\s+'([^']+)';$/gm;

/** @type {esbuild.Plugin} */
const publicTfjsCore = {
  name: 'public-tfjs-core',
  setup(build) {
    // Map every relative import between tfjs-core files.
    build.onResolve({ filter: /^\./ }, async (args) => {
      if (!args.importer.startsWith(tfjsDist)) return undefined;
      const abs = path.resolve(path.dirname(args.importer), args.path);
      const rel = path.relative(tfjsDist, abs).replace(/\.js$/, '').split(path.sep).join('/');
      if (isGradientModule(rel)) return { path: `${abs.replace(/\.js$/, '')}.js` };
      const source = await readFile(args.importer, 'utf8');
      const clause = [...source.matchAll(ALLOWED_IMPORT)].find((m) => m[2] === args.path)?.[1];
      if (!clause) throw new Error(`cannot parse the import of ${args.path} in ${args.importer}`);
      const names = importedNames(clause.trim(), source);
      const missing = names.filter((n) => publicExpression(rel, n) === undefined);
      if (missing.length === 0) {
        return { path: `${rel}?${names.join(',')}`, namespace: 'tfjs-public' };
      }
      if (STATEFUL_MODULES.has(rel)) {
        throw new Error(`${missing.join(', ')} from stateful tfjs-core module ${rel} is not public`);
      }
      // Not public (e.g. ops only gradients use): bundle the stateless op file itself.
      return { path: `${abs.replace(/\.js$/, '')}.js` };
    });

    build.onLoad({ filter: /.*/, namespace: 'tfjs-public' }, (args) => {
      const [rel, list] = args.path.split('?');
      const names = list ? list.split(',') : [];
      for (const n of names) (publicModules.get(rel) ?? publicModules.set(rel, new Set()).get(rel)).add(n);
      const lines = names.map((n) => `export const ${n} = ${publicExpression(rel, n)};`);
      return { contents: `import { tf } from 'tfjs-public:root';\n${lines.join('\n')}\n`, loader: 'js' };
    });

    // One namespace import of the public entry, shared by all the virtual modules above.
    build.onResolve({ filter: /^tfjs-public:root$/ }, () => ({
      path: 'root',
      namespace: 'tfjs-public-root',
    }));
    build.onLoad({ filter: /.*/, namespace: 'tfjs-public-root' }, () => ({
      contents: `import * as tf from '${TFJS_CORE}';\nexport { tf };\n`,
      loader: 'js',
    }));

    build.onLoad({ filter: /\.js$/ }, async (args) => {
      if (!args.path.startsWith(tfjsDist)) return undefined;
      const rel = path.relative(tfjsDist, args.path).split(path.sep).join('/');
      bundledSources.add(rel);
      let contents = await readFile(args.path, 'utf8');
      if (rel === 'register_all_gradients.js') {
        const loop =
          /for \(const gradientConfig of gradConfigs\) \{\s*registerGradient\(gradientConfig\);\s*\}/;
        if (!loop.test(contents))
          throw new Error('register_all_gradients.js changed: registration loop not found');
        contents = contents.replace(loop, `export { gradConfigs as ${EXPORT_NAME} };`);
      }
      return { contents, loader: 'js', resolveDir: path.dirname(args.path) };
    });
  },
};

const result = await esbuild.build({
  entryPoints: [entry],
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  target: 'es2020',
  external: [TFJS_CORE],
  plugins: [publicTfjsCore],
  legalComments: 'none',
  absWorkingDir: tfjsDist, // keeps the bundle's path comments short: gradients/Abs_grad.js
  metafile: true,
  write: false,
  logLevel: 'warning',
});

// Checks: only gradient files (and stateless gradient-only ops) were bundled.
const unexpected = [...bundledSources].filter(
  (rel) => !isGradientModule(rel.replace(/\.js$/, '')) && !/^ops\/[a-z0-9_]+\.js$/.test(rel),
);
if (unexpected.length > 0) throw new Error(`unexpected tfjs-core modules bundled: ${unexpected.join(', ')}`);
const opFiles = [...bundledSources].filter((rel) => rel.startsWith('ops/')).sort();
const code = result.outputFiles[0].text;
const imports = [...code.matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1]);
if (imports.some((s) => s !== TFJS_CORE))
  throw new Error(`bundle imports more than ${TFJS_CORE}: ${imports}`);
for (const marker of ['class Engine', 'kernelRegistry', 'class Environment', 'class Tensor ']) {
  if (code.includes(marker)) throw new Error(`bundle contains tfjs-core internals ("${marker}")`);
}

const header = `// GENERATED by scripts/bundle-gradients.mjs from ${TFJS_CORE}@${tf.version_core}: do not edit.
// tfjs-core's gradient configs, importing only the public ${TFJS_CORE} entry. Apache-2.0 (TensorFlow.js).
`;
const dts = `// GENERATED by scripts/bundle-gradients.mjs: do not edit.
import type { GradConfig } from '${TFJS_CORE}';

/** Every gradient config listed in ${TFJS_CORE}@${tf.version_core}'s register_all_gradients.js (unregistered). */
export declare const ${EXPORT_NAME}: GradConfig[];
`;
await mkdir(outDir, { recursive: true });
await writeFile(outFile, header + code);
await writeFile(outFile.replace(/\.js$/, '.d.ts'), dts);

const gradientFiles = [...bundledSources].filter((rel) => rel.startsWith('gradients/')).length;
console.log(
  `bundle-gradients: ${path.relative(packageRoot, outFile)} (${(code.length / 1024).toFixed(1)} KiB): ` +
    `${gradientFiles} gradient files; ${publicModules.size} tfjs-core modules mapped to the public entry; ` +
    `gradient-only ops bundled from source: ${opFiles.map((f) => path.posix.basename(f, '.js')).join(', ') || 'none'}`,
);
