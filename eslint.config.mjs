// Flat-config port of the temporalio/samples-typescript ESLint rules.
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

// A step folder under activities/ imports shared plumbing only (artifacts/, datasets/, rows/, llm/, python/,
// results/, types.ts), never another step folder; the shared folders import no step at all.
const STEPS = ['benchmarks', 'evaluate', 'export', 'generate', 'report', 'score', 'segment', 'train', 'validate'];
const SHARED = ['artifacts', 'datasets', 'llm', 'python', 'results', 'rows'];
const stepImports = (folders) => ({
  'no-restricted-imports': [
    'error',
    { patterns: [{ group: folders.map((f) => `../${f}/*`), message: 'move what is shared into shared plumbing' }] },
  ],
});

export default tseslint.config(
  { ignores: ['lib/**', 'node_modules/**', '.venv/**', '.pift/**', 'eslint.config.mjs'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['warn', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'object-shorthand': ['error', 'always'],
    },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox: no Node built-ins.
    files: ['workflows/**/*.ts', 'common/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { paths: [...builtinModules.filter((m) => m !== 'assert'), ...builtinModules.map((m) => `node:${m}`)] },
      ],
    },
  },
  ...STEPS.map((step) => ({
    files: [`activities/${step}/**/*.ts`],
    rules: stepImports(STEPS.filter((other) => other !== step)),
  })),
  { files: SHARED.map((folder) => `activities/${folder}/**/*.ts`), rules: stepImports(STEPS) },
);
