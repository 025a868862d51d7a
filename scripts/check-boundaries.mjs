// Module boundaries, from the Nx tags in each project's package.json:
//   type:lib may import only type:lib projects; type:app may import only type:lib projects.
// Production sources (src/, minus *.spec.ts) are checked, both for @hookline/* imports and for
// relative imports that climb out of the project. Tests may reach across (integration tests run
// a neighbouring service in-process). Also checks that imports match declared dependencies.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const projects = new Map();
for (const kind of ['apps', 'libs']) {
  for (const name of readdirSync(path.join(root, kind))) {
    const dir = path.join(root, kind, name);
    const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
    projects.set(pkg.name, { dir, pkg, tags: pkg.nx?.tags ?? [] });
  }
}

const problems = [];
const walk = (d) => readdirSync(d).flatMap((f) => (statSync(path.join(d, f)).isDirectory() ? walk(path.join(d, f)) : [path.join(d, f)]));
for (const [name, p] of projects) {
  const type = p.tags.find((t) => t.startsWith('type:'));
  if (!type) problems.push(`${name}: no type:app or type:lib tag`);
  const declared = new Set(Object.keys(p.pkg.dependencies ?? {}));
  for (const file of walk(path.join(p.dir, 'src')).filter((f) => f.endsWith('.ts') && !f.endsWith('.spec.ts') && !f.includes(`${path.sep}gen${path.sep}`))) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/from\s+'([^']+)'/g)) {
      const spec = m[1];
      const rel = path.relative(root, file);
      if (spec.startsWith('@hookline/')) {
        const target = projects.get(spec.split('/').slice(0, 2).join('/'));
        if (!target) problems.push(`${rel}: imports unknown project ${spec}`);
        else if (!target.tags.includes('type:lib')) problems.push(`${rel}: ${type} may not import the app ${spec}`);
        else if (!declared.has(target.pkg.name)) problems.push(`${rel}: imports ${spec} but ${name} does not declare it in package.json`);
      } else if (spec.startsWith('.')) {
        const resolved = path.resolve(path.dirname(file), spec);
        if (!resolved.startsWith(p.dir + path.sep)) problems.push(`${rel}: relative import ${spec} leaves ${name}`);
      }
    }
  }
}
if (problems.length > 0) {
  console.error(`module boundary violations:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`module boundaries ok (${projects.size} projects)`);
