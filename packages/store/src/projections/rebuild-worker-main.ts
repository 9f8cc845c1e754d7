/**
 * A rebuild worker (node:worker_threads): one RebuildPartition, driven by the main thread's
 * RebuildWorkers (rebuild-workers.ts, which declares the messages). Started through
 * rebuild-worker-thread.mjs, which bundles this file and what it imports once (esbuild, as
 * the CLI's launcher does) and loads the bundle.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { StrataError } from '@strata/core';
import { BinaryCopyWriter } from './binary-copy.ts';
import { RebuildPartition } from './rebuild-partition.ts';
import type { FromRebuildWorker, RebuildWorkerData, ToRebuildWorker } from './rebuild-workers.ts';

/** Bytes of binary COPY per chunk handed to the main thread (smaller than the loaders' 4 MiB: the main thread writes while the worker encodes the next). */
const chunkBytesMax = 1024 * 1024;
/** Chunks handed over and not yet written by the main thread, at most. */
const chunksAheadMax = 3;

const port = parentPort;
if (port === null) throw new Error('rebuild-worker-main runs in a worker thread only');
const data = workerData as RebuildWorkerData;
const partition = new RebuildPartition({ index: data.index, count: data.count, forwardTypes: data.forwardTypes });
let credits = chunksAheadMax;
let creditWaiter: (() => void) | undefined;

function post(message: FromRebuildWorker, transfer?: ArrayBuffer[]): void {
  port!.postMessage(message, transfer);
}

function fail(error: unknown): void {
  post({
    kind: 'failed',
    code: error instanceof StrataError ? error.code : 'STRATA_ERR_STORE_UNAVAILABLE',
    message: error instanceof Error ? error.message : String(error),
  });
}

async function writeTable(table: ToRebuildWorker & { kind: 'write' }): Promise<void> {
  const source = partition.copySource(table.table);
  const out = new BinaryCopyWriter(chunkBytesMax);
  for (;;) {
    const more = source.writeRow(out);
    if (out.hasChunk || !more) {
      for (const chunk of out.take(!more)) {
        while (credits === 0) await new Promise<void>((resolve) => (creditWaiter = resolve));
        credits--;
        // Each chunk has a buffer of its own (the writer starts a new one): handed over, not copied.
        const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        post({ kind: 'chunk', bytes }, [bytes.buffer as ArrayBuffer]);
      }
    }
    if (!more) break;
  }
  post({ kind: 'table-done', rows: out.rows });
}

port.on('message', (message: ToRebuildWorker) => {
  try {
    switch (message.kind) {
      case 'copy':
        partition.pushCopy(message.bytes);
        post({ kind: 'ack', scanRows: partition.scanRows });
        return;
      case 'copy-end': {
        const checkpoint = partition.finishCopy();
        post({
          kind: 'copy-done',
          scanRows: partition.scanRows,
          checkpoint: checkpoint === undefined ? null : [checkpoint.transactionId.toString(), checkpoint.position.toString()],
        });
        return;
      }
      case 'events':
        partition.addEvents(message.events);
        return;
      case 'read-end':
        post({ kind: 'read-done', events: partition.events, forwarded: partition.takeForwarded() });
        return;
      case 'write':
        credits = chunksAheadMax;
        writeTable(message).catch(fail);
        return;
      case 'credit': {
        credits++;
        const waiter = creditWaiter;
        creditWaiter = undefined;
        waiter?.();
        return;
      }
    }
  } catch (error) {
    fail(error);
  }
});
post({ kind: 'ready' });
