import { defineConfig } from 'vitest/config';

// Test tiers by file suffix (STYLE.md): unit = pure and fast, int = real stores and files,
// e2e = real server processes over loopback sockets.
export default defineConfig({
  test: {
    projects: [
      // unit: a generous guard (property tests share 2 cores with the int and e2e tiers in CI);
      // it stops a hang, it does not judge speed.
      { test: { name: 'unit', include: ['**/*.unit.test.ts'], exclude: ['**/node_modules/**'], testTimeout: 30_000 } },
      {
        test: {
          name: 'int',
          include: ['**/*.int.test.ts'],
          exclude: ['**/node_modules/**'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['**/*.e2e.test.ts'],
          exclude: ['**/node_modules/**'],
          testTimeout: 180_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
