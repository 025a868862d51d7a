// Three projects: `unit` (pure, beside the code), `integration` (apps/*/test, libs/*/test: a
// real Kafka broker and MongoDB wire server, started once per run by scripts/test.sh), and `e2e`
// (separate service processes). See README "Tests".
const transform = { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2023', parser: { syntax: 'typescript' } } }] };
const moduleNameMapper = { '^@hookline/([^/]+)$': '<rootDir>/libs/$1/src' };
// Tests' own kafkajs clients get the services' fix of kafkajs' 1 ms timer (libs/kafka/src/request-queue-fix.ts).
const withKafka = { setupFiles: ['<rootDir>/libs/kafka/test/jest-setup.ts'] };
const common = { testEnvironment: 'node', transform, moduleNameMapper, rootDir: __dirname };

module.exports = {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/{apps,libs}/*/src/**/*.spec.ts'] },
    { ...common, ...withKafka, displayName: 'integration', testMatch: ['<rootDir>/{apps,libs}/*/test/**/*.int.spec.ts'], slowTestThreshold: 30 },
    { ...common, ...withKafka, displayName: 'e2e', testMatch: ['<rootDir>/e2e/**/*.e2e.spec.ts'], slowTestThreshold: 60 },
  ],
};
