// @ts-check
// The PGlite side of pglite-worker.ts: a node:worker_threads entry that owns one PGlite
// database and answers the main thread's requests one message each. Plain JavaScript because
// a worker is started from a file Node can load as it is (no tsx hooks in the worker, no
// bundle): the launcher bundles packages/*/src into one file, this one is resolved through
// the package's `./pglite-worker-thread` export. The message shapes are declared (and
// type-checked on the sending side) in pglite-worker.ts; keep the two in step.
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';

const INT8_TYPE_ID = 20;
/** @param {string} value */
const int8AsText = (value) => value;
const INT8_AS_TEXT = { [INT8_TYPE_ID]: int8AsText };

const port = parentPort;
if (port === null) throw new Error('pglite-worker-thread.mjs runs in a worker thread only');

/** @type {{ dataDir?: string, loadDataDir?: Blob, startParams: string[] }} */
const options = workerData;

/**
 * The fields of PGlite's DatabaseError (pg-protocol) that go back to the main thread: the
 * store reads `code` (SQLSTATE), the rest is for messages and logs.
 */
const ERROR_FIELDS = ['code', 'severity', 'detail', 'hint', 'position', 'where', 'schema', 'table', 'column', 'dataType', 'constraint', 'routine'];

/** @param {unknown} error */
function describeError(error) {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error), fields: {} };
  /** @type {Record<string, string>} */
  const fields = {};
  for (const field of ERROR_FIELDS) {
    const value = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (error))[field];
    if (typeof value === 'string') fields[field] = value;
  }
  return { name: error.name, message: error.message, fields };
}

/** @type {PGlite | undefined} */
let pglite;
try {
  const settings = { startParams: options.startParams };
  pglite = options.dataDir !== undefined ? new PGlite(options.dataDir, settings) : new PGlite({ ...settings, ...(options.loadDataDir === undefined ? {} : { loadDataDir: options.loadDataDir }) });
  await pglite.waitReady;
  port.postMessage({ kind: 'ready' });
} catch (error) {
  port.postMessage({ kind: 'failed', error: describeError(error) });
  await pglite?.close().catch(() => undefined);
  port.close();
}

const database = pglite;
if (database !== undefined && !database.closed) {
  port.on('message', (/** @type {{ id: number, kind: 'query' | 'exec' | 'close', sql?: string, params?: unknown[], int8AsText?: boolean, blob?: Blob }} */ request) => {
    void answer(database, request);
  });
}

/**
 * PGlite queues its calls itself, in arrival order: requests are handed over as they come,
 * so a statement sent while another runs starts the moment it ends, without a round trip.
 * @param {PGlite} database
 * @param {{ id: number, kind: 'query' | 'exec' | 'close', sql?: string, params?: unknown[], int8AsText?: boolean, blob?: Blob }} request
 */
async function answer(database, request) {
  try {
    if (request.kind === 'close') {
      if (!database.closed) await database.close();
      port?.postMessage({ kind: 'result', id: request.id, ok: true, rows: [] });
      port?.close();
      return;
    }
    if (request.kind === 'exec') {
      // One simple query of several statements (parameters inlined): one pass into PostgreSQL
      // for all of them, where a statement sent with `query` costs six (parse, describe, bind,
      // describe, execute, sync). The first error ends it and rejects.
      const results = await database.exec(request.sql ?? '', request.int8AsText === true ? { parsers: INT8_AS_TEXT } : {});
      port?.postMessage({
        kind: 'results',
        id: request.id,
        ok: true,
        results: results.map((result) => ({ rows: result.rows, ...(result.affectedRows === undefined ? {} : { affectedRows: result.affectedRows }) })),
      });
      return;
    }
    const result = await database.query(request.sql ?? '', request.params ?? [], {
      ...(request.int8AsText === true ? { parsers: INT8_AS_TEXT } : {}),
      ...(request.blob === undefined ? {} : { blob: request.blob }),
    });
    port?.postMessage({
      kind: 'result',
      id: request.id,
      ok: true,
      rows: result.rows,
      ...(result.affectedRows === undefined ? {} : { affectedRows: result.affectedRows }),
      ...(result.blob === undefined ? {} : { blob: result.blob }),
    });
  } catch (error) {
    port?.postMessage({ kind: request.kind === 'exec' ? 'results' : 'result', id: request.id, ok: false, error: describeError(error) });
  }
}
