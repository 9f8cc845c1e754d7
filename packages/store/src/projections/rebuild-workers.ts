import { Worker } from 'node:worker_threads';
import { ERROR_CATALOGUE, StrataError, type ErrorCode, type EventType, type RecordedEvent } from '@strata/core';
import type { Checkpoint } from '../event-store.ts';
import { partitionOfStream, type PartitionTable } from './rebuild-partition.ts';

/**
 * The artifact-tree fold of a rebuild in worker threads (node:worker_threads), one
 * RebuildPartition each (rebuild-partition.ts): the main thread reads the one binary COPY
 * scan and hands its bytes to every worker (each decodes and folds only its repositories'
 * rows), passes on the events read after it, then takes each table's binary COPY chunks from
 * the workers as they encode them and writes them into one COPY per table. See
 * rebuild-projections.ts and docs/storage.md ("Rebuild in worker threads").
 */

export interface RebuildWorkerData {
  readonly index: number;
  readonly count: number;
  readonly forwardTypes: readonly EventType[];
}

export type ToRebuildWorker =
  | { readonly kind: 'copy'; readonly bytes: Uint8Array }
  | { readonly kind: 'copy-end' }
  | { readonly kind: 'events'; readonly events: readonly RecordedEvent[] }
  | { readonly kind: 'read-end' }
  | { readonly kind: 'write'; readonly table: PartitionTable }
  | { readonly kind: 'credit' };

export type FromRebuildWorker =
  | { readonly kind: 'ready' }
  | { readonly kind: 'ack'; readonly scanRows: number }
  | { readonly kind: 'copy-done'; readonly scanRows: number; readonly checkpoint: readonly [string, string] | null }
  | { readonly kind: 'read-done'; readonly events: number; readonly forwarded: RecordedEvent[] }
  | { readonly kind: 'chunk'; readonly bytes: Uint8Array }
  | { readonly kind: 'table-done'; readonly rows: number }
  | { readonly kind: 'failed'; readonly code: string; readonly message: string };

const COPY_EVENT_FIELDS = 12;
const REPOSITORY_DELETED = Buffer.from('RepositoryDeleted');
const COPY_TRAILER = Buffer.from([0xff, 0xff]);
/** Bytes of a worker's share of the scan handed over at a time. */
const scanBatchBytes = 256 * 1024;
/** Batches a worker may have queued before the scan waits for it (memory stays bounded when the workers fall behind). */
const scanBatchesAheadMax = 8;

function workerError(code: string, message: string): StrataError {
  const known = Object.hasOwn(ERROR_CATALOGUE, code) ? (code as ErrorCode) : 'STRATA_ERR_STORE_UNAVAILABLE';
  return new StrataError(known, `rebuild worker: ${message}`);
}

/** One worker's messages, taken one at a time (acks are counted as they come, not queued). */
class Mailbox {
  readonly worker: Worker;
  readonly #queue: FromRebuildWorker[] = [];
  #waiter: { resolve: (message: FromRebuildWorker) => void; reject: (error: unknown) => void } | undefined;
  #failure: unknown;
  /** Scan batches handed over and not yet acknowledged. */
  outstanding = 0;
  scanRows = 0;
  onAck: (() => void) | undefined;

  constructor(worker: Worker) {
    this.worker = worker;
    worker.on('message', (message: FromRebuildWorker) => {
      if (message.kind === 'ack') {
        this.outstanding--;
        this.scanRows = message.scanRows;
        this.onAck?.();
        return;
      }
      if (message.kind === 'failed') return this.#fail(workerError(message.code, message.message));
      const waiter = this.#waiter;
      if (waiter === undefined) this.#queue.push(message);
      else {
        this.#waiter = undefined;
        waiter.resolve(message);
      }
    });
    worker.on('error', (error) => this.#fail(new StrataError('STRATA_ERR_STORE_UNAVAILABLE', `rebuild worker failed: ${error.message}`, {}, { cause: error })));
    worker.on('exit', (code) => this.#fail(new StrataError('STRATA_ERR_STORE_UNAVAILABLE', `rebuild worker exited (code ${code})`)));
  }

  get failure(): unknown {
    return this.#failure;
  }

  #fail(error: unknown): void {
    if (this.#failure !== undefined) return;
    this.#failure = error;
    this.onAck?.();
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.reject(error);
  }

  /** The next message, which must be of `kind`. */
  async receive<K extends FromRebuildWorker['kind']>(kind: K): Promise<FromRebuildWorker & { kind: K }> {
    const message = await this.next();
    if (message.kind !== kind) throw new StrataError('STRATA_ERR_STORE_UNAVAILABLE', `rebuild worker sent '${message.kind}', expected '${kind}'`);
    return message as FromRebuildWorker & { kind: K };
  }

  /** The next message, whatever its kind. */
  async next(): Promise<FromRebuildWorker> {
    const queued = this.#queue.shift();
    if (queued !== undefined) return queued;
    if (this.#failure !== undefined) throw this.#failure;
    return new Promise<FromRebuildWorker>((resolve, reject) => (this.#waiter = { resolve, reject }));
  }

  post(message: ToRebuildWorker, transfer?: ArrayBuffer[]): void {
    if (this.#failure !== undefined) throw this.#failure;
    this.worker.postMessage(message, transfer);
  }
}

export class RebuildWorkers {
  readonly #mailboxes: readonly Mailbox[];
  /** Each worker's batch being filled. */
  readonly #batches: { bytes: Buffer; at: number }[];
  /** Batches filled and not yet handed over. */
  readonly #full: { readonly index: number; readonly bytes: Buffer }[] = [];
  /** The part of a row cut at the end of the last chunk. */
  #carry: Buffer | undefined;
  #headerRead = false;
  #ended = false;
  #rows = 0;
  /** The last row's transaction id and position fields (from the first's length on). */
  #lastRow: Buffer | undefined;
  readonly #streams = new Map<number, { readonly bytes: Buffer; readonly partition: number }>();
  #wake: (() => void) | undefined;

  private constructor(mailboxes: readonly Mailbox[]) {
    this.#mailboxes = mailboxes;
    this.#batches = mailboxes.map(() => ({ bytes: Buffer.allocUnsafeSlow(scanBatchBytes), at: 0 }));
    for (const mailbox of mailboxes) {
      mailbox.onAck = () => {
        const wake = this.#wake;
        this.#wake = undefined;
        wake?.();
      };
    }
  }

  get count(): number {
    return this.#mailboxes.length;
  }

  /**
   * Starts `count` workers and waits until each is ready. Fails (with every worker ended)
   * when one cannot start: the caller then folds in this thread.
   */
  static async start(count: number, forwardTypes: readonly EventType[]): Promise<RebuildWorkers> {
    const url = new URL(import.meta.resolve('@strata/store/rebuild-worker-thread'));
    const mailboxes: Mailbox[] = [];
    try {
      for (let index = 0; index < count; index++) {
        const workerData: RebuildWorkerData = { index, count, forwardTypes: [...forwardTypes] };
        // No tsx hooks in the worker (rebuild-worker-thread.mjs loads a bundle), whatever the parent runs with.
        mailboxes.push(new Mailbox(new Worker(url, { workerData, execArgv: [] })));
      }
      for (const mailbox of mailboxes) await mailbox.receive('ready');
      return new RebuildWorkers(mailboxes);
    } catch (error) {
      await Promise.all(mailboxes.map((mailbox) => mailbox.worker.terminate()));
      throw error;
    }
  }

  /**
   * Bytes of the scan's binary COPY output, in order (any chunking). This thread routes the
   * rows: each worker gets the header, then only its repositories' rows (by the stream's
   * bytes; `RepositoryDeleted` rows to every worker, which apply them by `data.key`), then
   * the trailer at endScan. Waits while a worker is too far behind.
   */
  async scan(chunk: Uint8Array): Promise<void> {
    const carried = this.#carry;
    const bytes = carried === undefined ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength) : Buffer.concat([carried, chunk]);
    this.#carry = undefined;
    let offset = 0;
    if (!this.#headerRead) {
      if (bytes.length < 19 || bytes.length < 19 + bytes.readInt32BE(15)) {
        this.#carry = Buffer.from(bytes);
        return;
      }
      const headerBytes = 19 + bytes.readInt32BE(15);
      for (let index = 0; index < this.#mailboxes.length; index++) this.#append(index, bytes, 0, headerBytes);
      offset = headerBytes;
      this.#headerRead = true;
    }
    const count = this.#mailboxes.length;
    let lastRow = -1;
    while (offset + 2 <= bytes.length) {
      const fields = bytes.readInt16BE(offset);
      if (fields === -1) {
        this.#ended = true;
        offset += 2;
        break;
      }
      if (fields !== COPY_EVENT_FIELDS) throw new StrataError('STRATA_ERR_STORE_UNAVAILABLE', `bulk read of events failed: a row of ${fields} fields`);
      let at = offset + 2;
      let streamStart = 0;
      let streamLength = 0;
      let typeStart = 0;
      let typeLength = 0;
      let complete = true;
      for (let field = 0; field < COPY_EVENT_FIELDS; field++) {
        if (at + 4 > bytes.length) {
          complete = false;
          break;
        }
        const length = bytes.readInt32BE(at);
        if (length < 0) throw new StrataError('STRATA_ERR_STORE_UNAVAILABLE', 'bulk read of events failed: a NULL in a NOT NULL column');
        if (field === 3) {
          streamStart = at + 4;
          streamLength = length;
        } else if (field === 9) {
          typeStart = at + 4;
          typeLength = length;
        }
        at += 4 + length;
        if (at > bytes.length) {
          complete = false;
          break;
        }
      }
      if (!complete) break;
      this.#rows++;
      lastRow = offset;
      if (typeLength === REPOSITORY_DELETED.length && bytes.compare(REPOSITORY_DELETED, 0, typeLength, typeStart, typeStart + typeLength) === 0) {
        for (let index = 0; index < count; index++) this.#append(index, bytes, offset, at);
      } else {
        this.#append(this.#streamPartition(bytes, streamStart, streamLength), bytes, offset, at);
      }
      offset = at;
    }
    if (offset < bytes.length) {
      if (this.#ended) throw new StrataError('STRATA_ERR_STORE_UNAVAILABLE', 'bulk read of events failed: bytes after the COPY trailer');
      this.#carry = Buffer.from(bytes.subarray(offset));
    }
    // From the first field's value (the transaction id) to the end of the second's (the position).
    if (lastRow >= 0) this.#lastRow = Buffer.from(bytes.subarray(lastRow + 6, lastRow + 26));
    await this.#flushFull();
  }

  /** The partition of the stream in `bytes[start, start + length)`, by its bytes (a small table of the streams seen). */
  #streamPartition(bytes: Buffer, start: number, length: number): number {
    let hash = 2166136261 | 0;
    for (let index = start; index < start + length; index++) hash = Math.imul(hash ^ bytes[index]!, 16777619);
    const known = this.#streams.get(hash);
    if (known !== undefined && known.bytes.length === length && bytes.compare(known.bytes, 0, length, start, start + length) === 0) return known.partition;
    const partition = partitionOfStream(bytes.toString('utf8', start, start + length), this.#mailboxes.length);
    if (this.#streams.size < 100_000) this.#streams.set(hash, { bytes: Buffer.from(bytes.subarray(start, start + length)), partition });
    return partition;
  }

  /** Appends `bytes[start, end)` to worker `index`'s next batch. */
  #append(index: number, bytes: Buffer, start: number, end: number): void {
    let batch = this.#batches[index]!;
    if (batch.at + (end - start) > batch.bytes.length) {
      this.#full.push({ index, bytes: batch.bytes.subarray(0, batch.at) });
      batch = { bytes: Buffer.allocUnsafeSlow(Math.max(scanBatchBytes, end - start)), at: 0 };
      this.#batches[index] = batch;
    }
    bytes.copy(batch.bytes, batch.at, start, end);
    batch.at += end - start;
  }

  /** Hands the full batches over, waiting while their worker is too far behind. */
  async #flushFull(): Promise<void> {
    while (this.#full.length > 0) {
      const { index, bytes } = this.#full.shift()!;
      const mailbox = this.#mailboxes[index]!;
      for (;;) {
        if (mailbox.failure !== undefined) throw mailbox.failure;
        if (mailbox.outstanding < scanBatchesAheadMax) break;
        await new Promise<void>((resolve) => (this.#wake = resolve));
      }
      mailbox.outstanding++;
      // Each batch has a buffer of its own: handed over, not cloned.
      mailbox.post({ kind: 'copy', bytes }, [bytes.buffer as ArrayBuffer]);
    }
  }

  /** Rows of the scan routed so far (progress). */
  get scanRows(): number {
    return this.#rows;
  }

  /** Called on every acknowledgement of a scan batch (progress). */
  set onScanProgress(listener: (() => void) | undefined) {
    for (const mailbox of this.#mailboxes) {
      mailbox.onAck = () => {
        const wake = this.#wake;
        this.#wake = undefined;
        wake?.();
        listener?.();
      };
    }
  }

  /** The end of the scan: its row count and the checkpoint after its last row (undefined: no row). */
  async endScan(): Promise<{ rows: number; checkpoint: Checkpoint | undefined }> {
    if (!this.#ended || this.#carry !== undefined) throw new StrataError('STRATA_ERR_STORE_UNAVAILABLE', 'bulk read of events failed: the COPY data ended without its trailer');
    for (let index = 0; index < this.#mailboxes.length; index++) {
      this.#append(index, COPY_TRAILER, 0, COPY_TRAILER.length);
      const batch = this.#batches[index]!;
      this.#full.push({ index, bytes: batch.bytes.subarray(0, batch.at) });
    }
    await this.#flushFull();
    for (const mailbox of this.#mailboxes) mailbox.post({ kind: 'copy-end' });
    await Promise.all(this.#mailboxes.map((mailbox) => mailbox.receive('copy-done')));
    const last = this.#lastRow;
    // The row's transaction id (xid8, unsigned) and position (int8), each after its 4-byte length.
    const checkpoint = last === undefined ? undefined : { transactionId: last.readBigUInt64BE(0), position: last.readBigInt64BE(12) };
    return { rows: this.#rows, checkpoint };
  }

  /** Decoded events (read after the scan): every worker gets them and applies its own. */
  addEvents(events: readonly RecordedEvent[]): void {
    for (const mailbox of this.#mailboxes) mailbox.post({ kind: 'events', events });
  }

  /** The end of the read: the events of the forwarded types, each handed back once. */
  async endRead(): Promise<RecordedEvent[]> {
    for (const mailbox of this.#mailboxes) mailbox.post({ kind: 'read-end' });
    const done = await Promise.all(this.#mailboxes.map((mailbox) => mailbox.receive('read-done')));
    return done.flatMap((message) => message.forwarded);
  }

  /**
   * The binary COPY rows of `table` from every worker (no header or trailer), as they come;
   * `counter.rows` holds the rows once the iteration is done. A worker encodes a few chunks
   * ahead of what was taken from it.
   */
  async *tableChunks(table: PartitionTable, counter: { rows: number }): AsyncGenerator<Uint8Array> {
    for (const mailbox of this.#mailboxes) mailbox.post({ kind: 'write', table });
    // (Never rejected: a failure is returned, so that none is left unhandled when this ends early.)
    const receiving = new Map<Mailbox, Promise<{ mailbox: Mailbox; message?: FromRebuildWorker; error?: unknown }>>();
    const receive = (mailbox: Mailbox) =>
      receiving.set(
        mailbox,
        mailbox.next().then(
          (message) => ({ mailbox, message }),
          (error: unknown) => ({ mailbox, error }),
        ),
      );
    for (const mailbox of this.#mailboxes) receive(mailbox);
    while (receiving.size > 0) {
      const { mailbox, message, error } = await Promise.race(receiving.values());
      receiving.delete(mailbox);
      if (message === undefined) throw error;
      if (message.kind === 'table-done') {
        counter.rows += message.rows;
        continue;
      }
      if (message.kind !== 'chunk') throw new StrataError('STRATA_ERR_STORE_UNAVAILABLE', `rebuild worker sent '${message.kind}' while writing ${table}`);
      receive(mailbox);
      yield message.bytes;
      mailbox.post({ kind: 'credit' });
    }
  }

  /** Ends every worker. */
  async close(): Promise<void> {
    await Promise.all(this.#mailboxes.map((mailbox) => mailbox.worker.terminate()));
  }
}
