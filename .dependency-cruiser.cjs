// The layering of src/ (docs/architecture.md), checked by `npm run deps` and by test/architecture.test.ts.
const BACKENDS = '(memory|sqlite|file|postgres|nats|redis|http)';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import cycle blurs who depends on whom: no file may reach itself through its imports.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'core-imports-core-only',
      severity: 'error',
      comment: 'core is the contract every other folder builds on; it knows none of them.',
      from: { path: '^src/core/' },
      to: { path: '^src/', pathNot: '^src/core/' },
    },
    {
      name: 'backend-imports-core-only',
      severity: 'error',
      comment: 'A backend depends on core only, never on another backend, the server, testing or the CLI.',
      from: { path: `^src/${BACKENDS}/` },
      to: { path: '^src/', pathNot: ['^src/core/', '^src/$1/'] },
    },
    {
      name: 'feature-imports-core-only',
      severity: 'error',
      comment: 'checkpoints, exactly-once and lock are built on the Store interface, whatever backend is behind it.',
      from: { path: '^src/(checkpoints|exactly-once|lock)/' },
      to: { path: '^src/', pathNot: ['^src/core/', '^src/$1/'] },
    },
    {
      name: 'server-and-testing-apart',
      severity: 'error',
      comment: 'The server and the test kit sit side by side on top of open.ts: neither imports the other.',
      from: { path: '^src/(server|testing)/' },
      to: { path: '^src/(server|testing)/', pathNot: '^src/$1/' },
    },
    {
      name: 'open-imports-core-and-backends-only',
      severity: 'error',
      comment: 'open() maps a URL to a backend; it knows nothing above the backends.',
      from: { path: '^src/open\\.ts$' },
      to: { path: '^src/', pathNot: [`^src/${BACKENDS}/`, '^src/core/'] },
    },
    {
      name: 'only-the-cli-imports-the-cli',
      severity: 'error',
      comment: 'The CLI is the top layer: nothing in the library imports it.',
      from: { path: '^src/', pathNot: '^src/cli/' },
      to: { path: '^src/cli/' },
    },
    {
      name: 'no-tests-in-the-library',
      severity: 'error',
      comment: 'What ships never imports the test folder.',
      from: { path: '^src/' },
      to: { path: '^(test|bench|scripts)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
