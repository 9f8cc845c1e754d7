import { Readable } from 'node:stream';
import type pg from 'pg';

/** Protocol message codes of a COPY … TO STDOUT's answer (PostgreSQL's frontend/backend protocol). */
const ERROR_RESPONSE = 0x45; // E
const COPY_OUT_RESPONSE = 0x48; // H
const COPY_DATA = 0x64; // d
/** Asynchronous messages the backend may put between CopyData messages; skipped. */
const NOTIFICATION_RESPONSE = 0x41; // A
const NOTICE_RESPONSE = 0x4e; // N
const PARAMETER_STATUS = 0x53; // S

/** What CopyDataFramer.push found in a chunk. */
export interface CopyDataFrames {
  /**
   * The CopyData payloads of the chunk, back to back, with the protocol's message headers
   * taken out: a view of the chunk itself (compacted in place), possibly empty.
   */
  readonly data: Buffer;
  /**
   * 'more': the COPY goes on in the next chunk. 'done': a message that ends copy-out mode
   * (CopyDone, or any other than CopyData and the asynchronous ones) was read. 'error': an
   * ErrorResponse starts at `rest` (not consumed).
   */
  readonly state: 'more' | 'done' | 'error';
  /** 'done' and 'error': the chunk's bytes after the COPY, for the driver to parse. */
  readonly rest: Buffer | undefined;
}

/**
 * Takes the protocol framing out of a COPY … TO STDOUT's answer as it arrives in socket
 * chunks: each CopyData message's header (a code byte and a 32-bit length, five bytes per
 * row) is dropped and the payloads moved together inside the chunk they arrived in. No
 * buffer per message, nothing copied across chunks: what pg-copy-streams' copy-to does with
 * a list of buffers, a view (FastBuffer) of every message and a new buffer per read — for a
 * 10,000-row history page about 30 ms of CPU per call, half of it garbage collection
 * (benchmarks.md, H, night). Chunks may split messages and headers anywhere.
 */
export class CopyDataFramer {
  /** Payload bytes of the current message still to come (0: a header is next). */
  #remaining = 0;
  /** The current message's code. */
  #code = 0;
  /** A message header cut by a chunk boundary: its bytes so far. */
  readonly #header = Buffer.alloc(5);
  #headerFill = 0;

  /**
   * The chunk's payloads, in place: the chunk's bytes are overwritten (the caller owns it,
   * and nothing else reads it). After 'done' or 'error' the framer must not be pushed again.
   */
  push(chunk: Buffer): CopyDataFrames {
    const length = chunk.length;
    let read = 0;
    let write = 0;
    while (read < length) {
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, length - read);
        if (this.#code === COPY_DATA) {
          if (write !== read) chunk.copyWithin(write, read, read + take);
          write += take;
        }
        read += take;
        this.#remaining -= take;
        if (this.#remaining === 0 && this.#ends()) return { data: chunk.subarray(0, write), state: 'done', rest: chunk.subarray(read) };
        continue;
      }
      if (this.#headerFill === 0) {
        // An error (the statement failed, or failed midway): the driver parses it.
        if (chunk[read] === ERROR_RESPONSE) return { data: chunk.subarray(0, write), state: 'error', rest: chunk.subarray(read) };
        if (length - read >= 5) {
          this.#code = chunk[read]!;
          this.#remaining = chunk.readUInt32BE(read + 1) - 4;
          read += 5;
        } else {
          this.#headerFill = length - read;
          chunk.copy(this.#header, 0, read, length);
          read = length;
          continue;
        }
      } else {
        const take = Math.min(5 - this.#headerFill, length - read);
        chunk.copy(this.#header, this.#headerFill, read, read + take);
        this.#headerFill += take;
        read += take;
        if (this.#headerFill < 5) continue;
        this.#headerFill = 0;
        this.#code = this.#header[0]!;
        this.#remaining = this.#header.readUInt32BE(1) - 4;
      }
      if (this.#remaining < 0) throw new Error(`COPY: a protocol message of length ${this.#remaining + 4}`);
      if (this.#remaining === 0 && this.#ends()) return { data: chunk.subarray(0, write), state: 'done', rest: chunk.subarray(read) };
    }
    return { data: chunk.subarray(0, write), state: 'more', rest: undefined };
  }

  /** Whether the message just read ends copy-out mode. */
  #ends(): boolean {
    const code = this.#code;
    return code !== COPY_DATA && code !== COPY_OUT_RESPONSE && code !== NOTICE_RESPONSE && code !== PARAMETER_STATUS && code !== NOTIFICATION_RESPONSE;
  }
}

/**
 * `client.query(new CopyOutQuery('copy (…) to stdout …'))`: a pg submittable streaming the
 * COPY's data (payloads only, in chunks of any size) — pg-copy-streams' `to()` with
 * CopyDataFramer in place of its parser. It takes the connection's socket from pg when
 * submitted and gives it back, with the bytes after the COPY, at its end or at an error
 * (which pg then parses and reports through handleError).
 */
export class CopyOutQuery extends Readable implements pg.Submittable {
  readonly #text: string;
  readonly #framer = new CopyDataFramer();
  #connection: pg.Connection | undefined;
  #pgDataHandler: ((chunk: Buffer) => void) | undefined;
  #drained = false;
  #forwarding = false;
  #attached = false;
  readonly #onReadable = () => this.#forward();
  rowCount = 0;

  constructor(text: string) {
    super();
    this.#text = text;
  }

  /** Called by pg's client when the query's turn comes. */
  submit(connection: pg.Connection): void {
    this.#connection = connection;
    const socket = connection.stream;
    const handlers = socket.listeners('data') as ((chunk: Buffer) => void)[];
    if (handlers.length !== 1) throw new Error(`COPY: the connection has ${handlers.length} data listeners, expected 1`);
    this.#pgDataHandler = handlers[0]!;
    socket.removeListener('data', this.#pgDataHandler);
    socket.pause();
    this.#attached = true;
    this.#forward();
    socket.on('readable', this.#onReadable);
    connection.query(this.#text);
  }

  override _read(): void {
    this.#drained = true;
    this.#forward();
  }

  #forward(): void {
    const connection = this.#connection;
    if (this.#forwarding || !this.#drained || connection === undefined || !this.#attached) return;
    this.#forwarding = true;
    try {
      let chunk: Buffer | string | null;
      while (this.#attached && this.#drained && (chunk = connection.stream.read() as Buffer | string | null) !== null) {
        const frames = this.#framer.push(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk);
        if (frames.data.length > 0) this.#drained = this.push(frames.data);
        if (frames.state !== 'more') {
          this.#detach(frames.rest!);
          if (frames.state === 'done') this.push(null);
        }
      }
    } finally {
      this.#forwarding = false;
    }
  }

  /** Gives the socket back to pg with the bytes after the COPY (CommandComplete, ReadyForQuery, or an error). */
  #detach(rest: Buffer): void {
    const connection = this.#connection!;
    const socket = connection.stream;
    this.#attached = false;
    socket.removeListener('readable', this.#onReadable);
    socket.addListener('data', this.#pgDataHandler!);
    this.#pgDataHandler!(rest);
    // As pg-copy-streams: resumed after pg's handler returned (it may pause the socket).
    process.nextTick(() => socket.resume());
  }

  /** pg: the statement failed (before or during the COPY). */
  handleError(error: Error): void {
    this.destroy(error);
  }

  /** pg: `COPY <rows>`. */
  handleCommandComplete(message: { text?: string } | undefined): void {
    const match = /COPY (\d+)/.exec(message?.text ?? '');
    if (match !== null) this.rowCount = Number(match[1]);
  }

  handleReadyForQuery(): void {}
}
