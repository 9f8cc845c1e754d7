/**
 * The tree-shape lookup of a deploy round over the artifact-tree projection, run as `strata
 * serve` runs it (the store's `hotRead`: on PGlite in its worker, one `exec` with the
 * parameters inlined) and through Kysely with parameters: the same answers, for paths with
 * quotes, braces, `$n` and a backslash in them, on PGlite and (with DATABASE_URL) PostgreSQL.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { NewEvent } from '@strata/core';
import { ArtifactTreeProjection, openEventStore, type OpenedEventStore } from '@strata/store';
import pg from 'pg';
import { sqlTreeShapeQuery, type TreeShapeQuestion } from '../src/artifacts/tree-shape-lookups.ts';

const databaseUrl = process.env.DATABASE_URL;
const schema = `tree_shape_sql_${process.pid}_${Math.floor(Math.random() * 1e9)}`;

const backends: { readonly name: string; readonly open: () => Promise<OpenedEventStore> }[] = [
  { name: 'pglite (worker)', open: () => openEventStore({ projections: [new ArtifactTreeProjection()] }) },
  ...(databaseUrl === undefined ? [] : [{ name: 'postgres', open: () => openEventStore({ databaseUrl, schema, projections: [new ArtifactTreeProjection()], poolConnectionsMax: 2 }) }]),
];

afterAll(async () => {
  if (databaseUrl === undefined) return;
  const admin = new pg.Client({ connectionString: databaseUrl });
  await admin.connect();
  await admin.query(`drop schema if exists ${schema} cascade`);
  await admin.end();
});

const FILES = ["a/it's.jar", 'a/{b},"q"/x.bin', 'b/$1/y.txt', 'c.txt', 'd/ünï 🙂/e.txt'];
let seq = 0;
const deployed = (path: string): NewEvent =>
  ({
    id: `e-${++seq}-${Math.floor(Math.random() * 1e9)}`,
    origin: 'site-a',
    originSeq: seq,
    hlc: { wall: 1_700_000_000_000 + seq, logical: 0 },
    type: 'ArtifactDeployed',
    data: { path, sha256: 'a'.repeat(64), sha1: 'b'.repeat(40), md5: 'c'.repeat(32), size: 1, mimeType: 'application/octet-stream', properties: {} },
    meta: { actor: 'tester' },
  }) as NewEvent;

describe.each(backends)('tree-shape lookups in SQL on $name', ({ open }) => {
  it('answer the same through hotRead as through Kysely, whatever the paths hold', async () => {
    const opened = await open();
    try {
      seq = 0;
      await opened.store.append('repo-r', FILES.map(deployed));
      const questions: TreeShapeQuestion[] = [
        ...FILES.map((path) => ({ repo: 'r', path })),
        { repo: 'r', path: 'a' },
        { repo: 'r', path: 'a/{b},"q"' },
        { repo: 'r', path: 'b/$1' },
        { repo: 'r', path: "a/it's.jar/below" },
        { repo: 'r', path: 'c.txt/x' },
        { repo: 'r', path: 'nothing/here' },
        { repo: 'other', path: 'c.txt' },
        { repo: "r'", path: 'c.txt' },
        { repo: 'r', path: 'back\\slash/NULL' },
      ];
      const viaKysely = await sqlTreeShapeQuery(opened.db)(questions);
      const viaHotRead = await sqlTreeShapeQuery(opened.db, opened.hotRead)(questions);
      expect(viaHotRead).toEqual(viaKysely);
      expect(viaHotRead.slice(0, FILES.length).every((shape) => shape.isFile && !shape.isFolder)).toBe(true);
      expect(viaHotRead.slice(FILES.length)).toEqual([
        { isFile: false, isFolder: true, parentIsFile: false },
        { isFile: false, isFolder: true, parentIsFile: false },
        { isFile: false, isFolder: true, parentIsFile: false },
        { isFile: false, isFolder: false, parentIsFile: true },
        { isFile: false, isFolder: false, parentIsFile: true },
        { isFile: false, isFolder: false, parentIsFile: false },
        { isFile: false, isFolder: false, parentIsFile: false },
        { isFile: false, isFolder: false, parentIsFile: false },
        { isFile: false, isFolder: false, parentIsFile: false },
      ]);
    } finally {
      await opened.close();
    }
  });
});
