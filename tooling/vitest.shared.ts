import { defineProject } from 'vitest/config';

/** Shared vitest project settings: resolve workspace packages to their TypeScript source. */
export function peftProject(name: string) {
  return defineProject({
    resolve: { conditions: ['peft-source'] },
    ssr: { resolve: { conditions: ['peft-source'] } },
    test: {
      name,
      include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
      testTimeout: 120_000,
      hookTimeout: 120_000,
      pool: 'forks',
    },
  });
}
