import { defineConfig } from 'vitest/config';

// One vitest run over every workspace project; each package resolves its siblings to source
// through the `peft-source` export condition, so tests never need a prior build of dependencies.
export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/*'],
  },
});
