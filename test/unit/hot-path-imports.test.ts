// archive_command and restore_command start walship once per WAL file: what
// they evaluate must stay small. The archive catalog (a listing of the whole
// archive, sentinels, history files) is for commands that survey the
// archive; wal-fetch and wal-push name their keys through layout.ts alone.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { projectRoot } from '../support/paths.ts';

const source = join(projectRoot, 'src');

/** Modules evaluated for each file: the entry, both commands, and what wal-push imports for each upload. */
const HOT_PATH_ENTRIES = ['cli.ts', 'commands/wal-fetch.ts', 'commands/wal-push.ts', 'wal/push.ts', 'archive/identity.ts'];
const SURVEY_MODULES = ['archive/catalog.ts', 'archive/wal-index.ts', 'archive/timelines.ts', 'archive/backups.ts', 'archive/select.ts'];

/** The project modules `entries` import statically (`import type` and import() left out). */
function staticClosure(entries: string[]): Set<string> {
  const seen = new Set<string>();
  const pending = entries.map((entry) => join(source, entry));
  while (pending.length > 0) {
    const path = pending.pop()!;
    if (seen.has(path)) continue;
    seen.add(path);
    const text = readFileSync(path, 'utf8');
    for (const match of text.matchAll(/^(?:import|export)\s+(?!type\s)(?:[^'";]*?\sfrom\s+)?'(\.[^']+)';/gm)) {
      pending.push(resolve(dirname(path), match[1]!));
    }
  }
  return new Set([...seen].map((path) => relative(source, path)));
}

describe('the archive_command and restore_command path', () => {
  it('names keys through the layout and loads no archive survey', () => {
    const loaded = staticClosure(HOT_PATH_ENTRIES);
    assert.ok(loaded.has('archive/layout.ts'), 'the layout names the keys');
    assert.ok(loaded.has('postgres/wal-name.ts'), 'the closure follows imports');
    assert.deepEqual(SURVEY_MODULES.filter((module) => loaded.has(module)), []);
  });

  it('loads libsodium only when a key is configured: no module on the path imports it statically', () => {
    const loaded = staticClosure(HOT_PATH_ENTRIES);
    assert.ok(loaded.has('stages/encrypt/secretstream.ts'), 'the encryption stage is on the path');
    const importers = [...loaded].filter((module) => /^(?:import|export)\s+(?!type\s)(?:[^;]*?\sfrom\s+)?'sodium-native';/m.test(readFileSync(join(source, module), 'utf8')));
    assert.deepEqual(importers, []);
  });
});
