/**
 * CopyDataFramer: the CopyData payloads of a COPY … TO STDOUT's answer, with the protocol's
 * message headers taken out in place, whatever the socket's chunks cut (messages, headers).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CopyDataFramer } from '../src/projections/copy-out-stream.ts';

const message = (code: string, payload: Uint8Array) => {
  const header = Buffer.alloc(5);
  header[0] = code.charCodeAt(0);
  header.writeUInt32BE(payload.length + 4, 1);
  return Buffer.concat([header, payload]);
};

/** Cuts `bytes` at `cuts` (any positions) into fresh chunks, as a socket might deliver them. */
function chunked(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const at = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const cut of [...at, bytes.length]) {
    if (cut > from) chunks.push(Buffer.from(bytes.subarray(from, cut)));
    from = cut;
  }
  return chunks;
}

interface Fed {
  data: Buffer;
  state: 'more' | 'done' | 'error';
  /** `rest` of the last chunk read and every chunk after it. */
  after: Buffer;
}

function feed(chunks: readonly Buffer[]): Fed {
  const framer = new CopyDataFramer();
  const data: Buffer[] = [];
  for (let index = 0; index < chunks.length; index++) {
    const frames = framer.push(chunks[index]!);
    data.push(Buffer.from(frames.data));
    if (frames.state !== 'more') return { data: Buffer.concat(data), state: frames.state, after: Buffer.concat([frames.rest!, ...chunks.slice(index + 1)]) };
  }
  return { data: Buffer.concat(data), state: 'more', after: Buffer.alloc(0) };
}

const interspersed = fc.oneof(
  fc.uint8Array({ maxLength: 300 }).map((payload) => ({ code: 'd', payload })),
  fc.uint8Array({ maxLength: 20 }).map((payload) => ({ code: 'N', payload })),
  fc.uint8Array({ maxLength: 20 }).map((payload) => ({ code: 'S', payload })),
);
const afterCopy = Buffer.concat([message('C', Buffer.from('COPY 3\0')), message('Z', Buffer.from('I'))]);

describe('CopyDataFramer', () => {
  it('answers the CopyData payloads back to back and the bytes after CopyDone, however the chunks cut the messages', () => {
    fc.assert(
      fc.property(fc.array(interspersed, { maxLength: 40 }), fc.array(fc.nat(), { maxLength: 30 }), (messages, cuts) => {
        const wire = Buffer.concat([message('H', Buffer.from([1, 0, 0])), ...messages.map(({ code, payload }) => message(code, payload)), message('c', new Uint8Array(0)), afterCopy]);
        const fed = feed(chunked(wire, cuts));
        expect(fed.state).toBe('done');
        expect(fed.data.equals(Buffer.concat(messages.filter(({ code }) => code === 'd').map(({ payload }) => payload)))).toBe(true);
        expect(fed.after.equals(afterCopy)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('stops at an ErrorResponse and leaves it, unread, for the driver', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 20 }), (rows, cuts) => {
        const error = Buffer.concat([message('E', Buffer.from('SERROR\0C22012\0Mdivision by zero\0\0')), message('Z', Buffer.from('I'))]);
        const wire = Buffer.concat([message('H', Buffer.from([1, 0, 0])), ...rows.map((row) => message('d', row)), error]);
        const fed = feed(chunked(wire, cuts));
        expect(fed.state).toBe('error');
        expect(fed.data.equals(Buffer.concat(rows))).toBe(true);
        expect(fed.after.equals(error)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('goes on while the COPY has not ended, and refuses a message length below its own four bytes', () => {
    const rows = [Buffer.from('first row'), Buffer.from('second')];
    const wire = Buffer.concat([message('H', Buffer.from([1, 0, 0])), ...rows.map((row) => message('d', row))]);
    const fed = feed(chunked(wire, [3, 17]));
    expect(fed.state).toBe('more');
    expect(fed.data.toString()).toBe('first rowsecond');
    const broken = Buffer.from([0x64, 0, 0, 0, 2]);
    expect(() => new CopyDataFramer().push(broken)).toThrow(/length 2/);
  });
});
