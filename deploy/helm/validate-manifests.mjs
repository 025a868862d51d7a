// Validates `helm template` output against the Kubernetes OpenAPI schemas, offline.
//
//   node deploy/helm/validate-manifests.mjs rendered-a.yaml [rendered-b.yaml …]
//
// Schemas: the `kubernetes-models` npm package (OpenAPI of Kubernetes 1.36, compiled into one Ajv
// validator per kind) and `@kubernetes-models/keda` for KEDA's ScaledObject. That package also
// keeps APIs removed from Kubernetes long ago (it merges old specs), so only the API versions a
// current cluster serves are accepted here (SERVED below): a deprecated apiVersion fails.
//
// The compiled schemas, like Kubernetes' own OpenAPI, allow unknown fields (a misspelt
// `livenessProbes` would pass and be dropped by the API server). So each object is also type-
// checked, as an object literal, against the package's TypeScript interface of its kind: excess-
// property errors are unknown fields (the equivalent of kubeconform -strict).
//
// On top of the schemas, the chart's own promises are checked: names are DNS labels and unique,
// recommended labels are set, selectors match the pods they select, HPA / PDB / ScaledObject /
// Service targets exist, containers run non-root on a read-only root filesystem with gRPC probes.
//
// Prints one line per file and every problem as `file: Kind/name: path: message`; exits 1 on any.
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

// Where the schema packages live: the repo's node_modules (devDependencies), or a directory
// named by K8S_SCHEMA_NODE_MODULES (handy before they are added to package.json).
function findPackage(name) {
  const roots = [process.env.K8S_SCHEMA_NODE_MODULES, path.resolve(here, '../../node_modules')].filter(Boolean);
  for (const root of roots) {
    const dir = path.join(root, name);
    if (existsSync(path.join(dir, 'package.json'))) return dir;
  }
  console.error(`error: npm package ${name} not found in ${roots.join(' or ')}; run 'npm ci' (it is a devDependency)`);
  process.exit(2);
}
const importFrom = (dir, file) => import(pathToFileURL(path.join(dir, file)).href);

const yamlDir = findPackage('yaml');
const { parseAllDocuments } = await importFrom(yamlDir, JSON.parse(readFileSync(path.join(yamlDir, 'package.json'), 'utf8')).exports['.'].node ?? 'dist/index.js');
const k8sModels = findPackage('kubernetes-models');
const kedaModels = findPackage('@kubernetes-models/keda');

// apiVersion → directory of its models. Only versions served by Kubernetes 1.36 (and KEDA 2.x).
const SERVED = {
  v1: [k8sModels, 'v1'],
  'apps/v1': [k8sModels, 'apps/v1'],
  'batch/v1': [k8sModels, 'batch/v1'],
  'policy/v1': [k8sModels, 'policy/v1'],
  'autoscaling/v2': [k8sModels, 'autoscaling/v2'],
  'networking.k8s.io/v1': [k8sModels, 'networking.k8s.io/v1'],
  'rbac.authorization.k8s.io/v1': [k8sModels, 'rbac.authorization.k8s.io/v1'],
  'keda.sh/v1alpha1': [kedaModels, 'keda.sh/v1alpha1'],
};

const RECOMMENDED_LABELS = ['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/version', 'app.kubernetes.io/managed-by', 'app.kubernetes.io/part-of', 'helm.sh/chart'];
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const WORKLOADS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'Job']);

const modelCache = new Map();
async function modelFor(apiVersion, kind) {
  const key = `${apiVersion}/${kind}`;
  if (!modelCache.has(key)) {
    const served = SERVED[apiVersion];
    let model = null;
    if (served && /^[A-Za-z]+$/.test(kind)) {
      const file = path.join(served[0], served[1], `${kind}.js`);
      if (existsSync(file)) model = (await import(pathToFileURL(file).href))[kind] ?? null;
    }
    modelCache.set(key, model);
  }
  return modelCache.get(key);
}

// Unknown fields: one TypeScript program typing every object as its kind's interface; only
// excess-property diagnostics are reported (types, enums and required fields are Ajv's job).
// TypeScript reports one excess property per object literal, so a reported field is removed and
// the program checked again, until no new one appears.
async function unknownFields(objects, problem) {
  const tsDir = findPackage('typescript');
  const ts = (await import(pathToFileURL(path.join(tsDir, 'lib/typescript.js')).href)).default;
  const EXCESS_PROPERTY = new Set([2353, 2561]); // "Object literal may only specify known properties" (+ "did you mean")
  const options = { strict: true, noEmit: true, skipLibCheck: true, types: [], module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022 };
  const host = ts.createCompilerHost(options, true);
  const { getSourceFile, fileExists, readFile } = host;
  const fileName = path.join(here, '__rendered_manifests__.mts');
  let sourceFile;
  host.getSourceFile = (f, ...rest) => (f === fileName ? sourceFile : getSourceFile.call(host, f, ...rest));
  host.fileExists = (f) => f === fileName || fileExists.call(host, f);
  host.readFile = (f) => (f === fileName ? sourceFile.text : readFile.call(host, f));

  const typed = [];
  for (const o of objects) {
    const served = SERVED[o.apiVersion];
    if (served && /^[A-Za-z]+$/.test(o.kind) && existsSync(path.join(served[0], served[1], `${o.kind}.d.ts`))) {
      typed.push({ o, copy: structuredClone(o), spec: path.join(served[0], served[1], `${o.kind}.js`), iface: `I${o.kind}` });
    }
  }
  const specs = [...new Set(typed.map((t) => t.spec))];
  const header = specs.map((spec, i) => `import type { ${typed.find((t) => t.spec === spec).iface} as T${i} } from ${JSON.stringify(spec)};\n`).join('');

  const jsonPath = (pos) => {
    let node = sourceFile;
    for (let next = node; next; ) {
      node = next;
      next = ts.forEachChild(node, (c) => (c.getStart(sourceFile) <= pos && pos < c.end ? c : undefined));
    }
    const parts = [];
    for (let n = node; n && !ts.isVariableDeclaration(n); n = n.parent) {
      if (ts.isPropertyAssignment(n)) parts.unshift(n.name.text);
      else if (n.parent && ts.isArrayLiteralExpression(n.parent)) parts.unshift(String(n.parent.elements.indexOf(n)));
    }
    return parts;
  };
  const remove = (obj, parts) => {
    const parent = parts.slice(0, -1).reduce((v, k) => v?.[k], obj);
    if (parent && typeof parent === 'object') delete parent[parts.at(-1)];
  };

  let program;
  for (let round = 0; round < 20; round++) {
    let text = header;
    const spans = typed.map((t, i) => {
      const start = text.length;
      text += `export const o${i}: T${specs.indexOf(t.spec)} = ${JSON.stringify(t.copy, null, 1)};\n`;
      return { start, end: text.length, t };
    });
    sourceFile = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, true);
    program = ts.createProgram([fileName], options, host, program);
    let found = 0;
    for (const d of program.getSemanticDiagnostics(sourceFile)) {
      const message = ts.flattenDiagnosticMessageText(d.messageText, ' ');
      const span = spans.find((s) => s.start <= d.start && d.start < s.end);
      if (!span) {
        // The check itself is broken (e.g. a type package missing): fail rather than pass.
        problem({ kind: 'validator', metadata: { name: 'typescript' } }, 'unknown-field check', message);
        return;
      }
      if (!EXCESS_PROPERTY.has(d.code)) continue;
      const parts = jsonPath(d.start);
      const type = /in type '([^']+)'/.exec(message)?.[1] ?? '';
      problem(span.t.o, '/' + parts.join('/'), `unknown field${type ? ` (not in ${type})` : ''}`);
      remove(span.t.copy, parts);
      found++;
    }
    if (!found) return;
  }
}

const matches = (selector, labels) => Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);

function chartChecks(objects, problem) {
  const byKind = (kind) => objects.filter((o) => o.kind === kind);
  const seen = new Set();
  for (const o of objects) {
    const name = o.metadata?.name ?? '';
    const id = `${o.apiVersion}/${o.kind}/${name}`;
    if (seen.has(id)) problem(o, 'metadata.name', 'rendered twice');
    seen.add(id);
    if (!DNS_LABEL.test(name) || name.length > 63) problem(o, 'metadata.name', `"${name}" is not a DNS label (lower case, digits, '-', at most 63)`);
    for (const l of RECOMMENDED_LABELS) if (!o.metadata?.labels?.[l]) problem(o, 'metadata.labels', `missing recommended label ${l}`);
  }
  const deployments = byKind('Deployment');
  for (const d of deployments) {
    const sel = d.spec?.selector?.matchLabels;
    const podLabels = d.spec?.template?.metadata?.labels;
    if (!sel || !matches(sel, podLabels)) problem(d, 'spec.selector', 'matchLabels do not match the pod template labels');
    if (!sel?.['app.kubernetes.io/component']) problem(d, 'spec.selector.matchLabels', 'no app.kubernetes.io/component: services would select each other\'s pods');
    const pod = d.spec?.template?.spec ?? {};
    if (pod.securityContext?.runAsNonRoot !== true) problem(d, 'spec.template.spec.securityContext.runAsNonRoot', 'must be true');
    for (const c of pod.containers ?? []) {
      const at = `spec.template.spec.containers[${c.name}]`;
      const sc = c.securityContext ?? {};
      if (sc.readOnlyRootFilesystem !== true) problem(d, `${at}.securityContext.readOnlyRootFilesystem`, 'must be true');
      if (sc.allowPrivilegeEscalation !== false) problem(d, `${at}.securityContext.allowPrivilegeEscalation`, 'must be false');
      if (!sc.capabilities?.drop?.includes('ALL')) problem(d, `${at}.securityContext.capabilities.drop`, 'must include ALL');
      for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
        if (!c[probe]?.grpc?.port) problem(d, `${at}.${probe}`, 'must be a native gRPC probe');
      }
      const names = (c.env ?? []).map((e) => e.name);
      const dup = names.find((n, i) => names.indexOf(n) !== i);
      if (dup) problem(d, `${at}.env`, `${dup} is set twice`);
      for (const ref of c.envFrom ?? []) {
        const cm = ref.configMapRef?.name;
        if (cm && !byKind('ConfigMap').some((m) => m.metadata.name === cm)) problem(d, `${at}.envFrom`, `ConfigMap ${cm} is not rendered`);
      }
    }
  }
  const podsMatching = (selector) => deployments.filter((d) => matches(selector, d.spec?.template?.metadata?.labels));
  for (const s of byKind('Service')) {
    if (podsMatching(s.spec?.selector).length !== 1) problem(s, 'spec.selector', 'must select exactly one Deployment\'s pods');
  }
  for (const p of [...byKind('PodDisruptionBudget'), ...byKind('NetworkPolicy')]) {
    const sel = p.kind === 'NetworkPolicy' ? p.spec?.podSelector?.matchLabels : p.spec?.selector?.matchLabels;
    if (podsMatching(sel).length !== 1) problem(p, 'selector', 'must select exactly one Deployment\'s pods');
  }
  const target = (name) => deployments.some((d) => d.metadata.name === name);
  for (const h of byKind('HorizontalPodAutoscaler')) {
    if (!target(h.spec?.scaleTargetRef?.name)) problem(h, 'spec.scaleTargetRef', `Deployment ${h.spec?.scaleTargetRef?.name} is not rendered`);
  }
  for (const s of byKind('ScaledObject')) {
    if (!target(s.spec?.scaleTargetRef?.name)) problem(s, 'spec.scaleTargetRef', `Deployment ${s.spec?.scaleTargetRef?.name} is not rendered`);
    const hpaTargets = byKind('HorizontalPodAutoscaler').map((h) => h.spec?.scaleTargetRef?.name);
    if (hpaTargets.includes(s.spec?.scaleTargetRef?.name)) problem(s, 'spec.scaleTargetRef', 'also targeted by a HorizontalPodAutoscaler');
  }
}

async function validateFile(file) {
  const problems = [];
  const objects = [];
  const docs = parseAllDocuments(readFileSync(file, 'utf8'));
  for (const doc of docs) {
    if (doc.errors.length) {
      problems.push(`${file}: YAML: ${doc.errors.map((e) => e.message).join('; ')}`);
      continue;
    }
    const o = doc.toJS();
    if (o === null || o === undefined) continue; // empty document between '---'
    objects.push(o);
  }
  const problem = (o, where, message) => problems.push(`${file}: ${o.kind}/${o.metadata?.name}: ${where}: ${message}`);
  if (objects.length === 0) problems.push(`${file}: no objects rendered`);
  for (const o of objects) {
    const Model = await modelFor(o.apiVersion, o.kind);
    if (!Model) {
      problem(o, 'apiVersion', `${o.apiVersion} ${o.kind} is not an API served by Kubernetes 1.36 (or not known to this validator)`);
      continue;
    }
    try {
      new Model(o).validate();
    } catch (err) {
      const errors = err.errors ?? [{ instancePath: '', message: err.message }];
      for (const e of errors) problem(o, e.instancePath || '/', `${e.message}${e.params?.allowedValues ? ` (${e.params.allowedValues.join(', ')})` : ''}`);
    }
  }
  await unknownFields(objects, problem);
  chartChecks(objects, problem);
  const kinds = {};
  for (const o of objects) kinds[o.kind] = (kinds[o.kind] ?? 0) + 1;
  const summary = Object.entries(kinds).map(([k, n]) => `${n} ${k}`).join(', ');
  console.log(`${problems.length ? 'FAIL' : 'ok  '} ${path.basename(file)}: ${objects.length} objects (${summary})`);
  for (const p of problems) console.log(`  ${p}`);
  return problems.length;
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: validate-manifests.mjs rendered.yaml [more.yaml …]');
  process.exit(2);
}
let failed = 0;
for (const f of files) failed += await validateFile(f);
process.exit(failed ? 1 : 0);
