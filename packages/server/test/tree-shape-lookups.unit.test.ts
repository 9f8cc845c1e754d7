import { describe, expect, it } from 'vitest';
import { TreeShapeLookups, type TreeShape, type TreeShapeQuestion } from '../src/artifacts/tree-shape-lookups.ts';

/** A query that answers from a set of file paths and records the questions of each call. */
function recordingQuery(files: ReadonlySet<string>, options: { failOnCall?: number } = {}) {
  const calls: (readonly string[])[] = [];
  let release: (() => void) | undefined;
  let held: Promise<void> | undefined;
  const query = async (questions: readonly TreeShapeQuestion[]): Promise<readonly TreeShape[]> => {
    calls.push(questions.map((question) => question.path));
    const call = calls.length;
    if (held !== undefined) await held;
    if (call === options.failOnCall) throw new Error(`query ${call} failed`);
    return questions.map(({ path }) => {
      const parent = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : undefined;
      return {
        isFile: files.has(path),
        isFolder: [...files].some((file) => file.startsWith(`${path}/`)),
        parentIsFile: parent !== undefined && files.has(parent),
      };
    });
  };
  return {
    calls,
    query,
    /** Makes the next queries wait until `open` is called. */
    hold(): () => void {
      held = new Promise((resolve) => (release = resolve));
      return () => {
        held = undefined;
        release?.();
      };
    },
  };
}

describe('tree-shape lookups', () => {
  it('given an idle batcher, when deploys ask in the same turn of the event loop, then one query answers them all, each with its own shape', async () => {
    const recorded = recordingQuery(new Set(['a/file.bin', 'dir/inner.bin']));
    const lookups = new TreeShapeLookups(recorded.query);
    const asked = [
      lookups.shape('libs', 'a/file.bin/below.bin'),
      // Asked a few microtasks and ticks later, still in the same turn (a request's body read).
      Promise.resolve().then(() => lookups.shape('libs', 'dir')),
      new Promise<TreeShape>((resolve) => process.nextTick(() => resolve(lookups.shape('libs', 'new/file.bin')))),
    ];
    const shapes = await Promise.all(asked);
    expect(recorded.calls).toEqual([['a/file.bin/below.bin', 'dir', 'new/file.bin']]);
    expect(shapes).toEqual([
      { isFile: false, isFolder: false, parentIsFile: true },
      { isFile: false, isFolder: true, parentIsFile: false },
      { isFile: false, isFolder: false, parentIsFile: false },
    ]);
  });

  it('given a query in flight, when more deploys ask, then the next query answers all of them together', async () => {
    const recorded = recordingQuery(new Set());
    const lookups = new TreeShapeLookups(recorded.query);
    const open = recorded.hold();
    const first = lookups.shape('libs', 'one.bin');
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    expect(recorded.calls).toEqual([['one.bin']]);
    const later = [lookups.shape('libs', 'two.bin'), lookups.shape('libs', 'three.bin')];
    open();
    await Promise.all([first, ...later]);
    expect(recorded.calls).toEqual([['one.bin'], ['two.bin', 'three.bin']]);
  });

  it('given two queries allowed in flight, when deploys ask while one runs, then a second query answers them at once and later ones wait for either', async () => {
    const recorded = recordingQuery(new Set(['lib/a.jar']));
    const lookups = new TreeShapeLookups(recorded.query, { queriesInFlightMax: 2 });
    const open = recorded.hold();
    const first = lookups.shape('libs', 'one.bin');
    await new Promise((resolve) => setImmediate(resolve));
    const second = [lookups.shape('libs', 'two.bin'), lookups.shape('libs', 'lib/a.jar/x')];
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    // The second query started while the first was still held.
    expect(recorded.calls).toEqual([['one.bin'], ['two.bin', 'lib/a.jar/x']]);
    const third = [lookups.shape('libs', 'three.bin'), lookups.shape('libs', 'four.bin')];
    await new Promise((resolve) => setImmediate(resolve));
    expect(recorded.calls).toHaveLength(2);
    open();
    const shapes = await Promise.all([first, ...second, ...third]);
    expect(recorded.calls).toEqual([['one.bin'], ['two.bin', 'lib/a.jar/x'], ['three.bin', 'four.bin']]);
    expect(shapes.map((shape) => shape.parentIsFile)).toEqual([false, false, true, false, false]);
  });

  it('refuses a limit of queries in flight below one', () => {
    expect(() => new TreeShapeLookups(recordingQuery(new Set()).query, { queriesInFlightMax: 0 })).toThrow(/queriesInFlightMax/);
  });

  it('given a failing query, when it fails, then only the questions it held are refused and the next ones are answered', async () => {
    const recorded = recordingQuery(new Set(), { failOnCall: 1 });
    const lookups = new TreeShapeLookups(recorded.query);
    const failed = Promise.allSettled([lookups.shape('libs', 'x.bin'), lookups.shape('libs', 'y.bin')]);
    expect((await failed).map((result) => result.status)).toEqual(['rejected', 'rejected']);
    await expect(lookups.shape('libs', 'z.bin')).resolves.toEqual({ isFile: false, isFolder: false, parentIsFile: false });
    expect(recorded.calls).toEqual([['x.bin', 'y.bin'], ['z.bin']]);
  });
});
