#!/usr/bin/env node
// The registry reachable from our machines lacks some platform builds of optional native
// add-ons (msgpackr-extract for darwin/win32/arm). npm then writes their names into the
// lock file without entries, and `npm ci` refuses the lock as out of sync. This drops
// optional dependencies that have no entry in the lock, so the lock installs as written.
// Run it after `npm install` (CI runs it before `npm ci`); it changes nothing otherwise.
import { readFileSync, writeFileSync } from 'node:fs';

const file = 'package-lock.json';
const lock = JSON.parse(readFileSync(file, 'utf8'));
const removed = [];
for (const [location, entry] of Object.entries(lock.packages ?? {})) {
  for (const name of Object.keys(entry.optionalDependencies ?? {})) {
    const nested = `${location}/node_modules/${name}`;
    if (!lock.packages[nested] && !lock.packages[`node_modules/${name}`]) {
      delete entry.optionalDependencies[name];
      removed.push(name);
    }
  }
}
if (removed.length > 0) {
  writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
  console.log(`prune-lock-optionals: dropped ${removed.length} optional dependencies absent from the registry: ${removed.join(', ')}`);
}
