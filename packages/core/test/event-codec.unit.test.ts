import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import {
  decodeEvent,
  decodeEventBatch,
  decodeEventData,
  decodeMeta,
  decodeNewEvent,
  decodeRecordedEvent,
  encodeEvent,
  encodeEncodedEventBatch,
  encodeEventBatch,
  encodeStoredEvent,
  encodeEventData,
  encodeMeta,
  eventPayloadBytesMax,
  isFrozenValidNewEvent,
  isStrataError,
  validateNewEvent,
  type NewEvent,
  type RecordedEvent,
} from '../src/index.ts';
import { arbitraryNewEvent, arbitraryRecordedEvent } from './arbitraries.ts';
import { catchStrataError } from './strata-error-assertions.ts';

const plainPackr = new Packr({ useRecords: false, mapsAsObjects: true });

const deleted: NewEvent = {
  id: 'evt-1',
  origin: 'site-a',
  originSeq: 3,
  hlc: { wall: 1_700_000_000_000, logical: 2 },
  type: 'ArtifactDeleted',
  data: { path: 'a/b.jar' },
  meta: {},
};
const recorded: RecordedEvent = { ...deleted, stream: 'repo-libs', revision: 4, position: 2n ** 62n + 1n };

describe('event codec', () => {
  it('round-trips new and recorded events exactly, positions beyond 2^53 included', () => {
    expect(decodeNewEvent(encodeEvent(deleted))).toEqual(deleted);
    expect(decodeRecordedEvent(encodeEvent(recorded))).toEqual(recorded);
    expect(decodeEvent(encodeEvent(recorded))).toEqual(recorded);
    expect(decodeEvent(encodeEvent(deleted))).toEqual(deleted);
  });

  it('decodes the new event inside a recorded one, dropping what the recording site assigned', () => {
    expect(decodeNewEvent(encodeEvent(recorded))).toEqual(deleted);
  });

  it('refuses to read a new event as a recorded one', () => {
    expect(catchStrataError(() => decodeRecordedEvent(encodeEvent(deleted)), 'STRATA_ERR_EVENT_INVALID').details?.['field']).toMatch(/^(stream|revision|position)$/);
  });

  it('writes plain msgpack maps that another msgpack reader understands', () => {
    const decoded: unknown = plainPackr.unpack(encodeEvent(deleted));
    expect(decoded).toMatchObject({ id: 'evt-1', type: 'ArtifactDeleted', data: { path: 'a/b.jar' } });
  });

  it('refuses to encode an invalid event', () => {
    catchStrataError(() => encodeEvent({ ...deleted, data: { path: '../x' } }), 'STRATA_ERR_EVENT_INVALID');
  });

  it('refuses empty, garbage, trailing and non-binary input as malformed', () => {
    const valid = encodeEvent(deleted);
    const withTrailing = new Uint8Array([...valid, 0x00]);
    for (const bytes of [new Uint8Array(), new Uint8Array([0xc1]), new Uint8Array([0x93, 1, 2, 3]), new Uint8Array([0xa1, 0x61]), withTrailing, new Uint8Array([0xdf, 0xff, 0xff, 0xff, 0xff])]) {
      catchStrataError(() => decodeNewEvent(bytes), 'STRATA_ERR_CODEC_MALFORMED');
    }
    catchStrataError(() => decodeNewEvent('event' as unknown as Uint8Array), 'STRATA_ERR_CODEC_MALFORMED');
  });

  it('refuses absurdly nested input as malformed rather than overflowing the stack', () => {
    const depth = 200_000;
    const bytes = new Uint8Array(depth + 1).fill(0x91);
    bytes[depth] = 0xc0;
    catchStrataError(() => decodeNewEvent(bytes), 'STRATA_ERR_CODEC_MALFORMED');
  });

  it('refuses well-formed msgpack of an unknown event type as an unknown type', () => {
    const bytes: Uint8Array = plainPackr.pack({ ...deleted, type: 'ArtifactTeleported' });
    catchStrataError(() => decodeNewEvent(bytes), 'STRATA_ERR_CODEC_UNKNOWN_TYPE');
  });

  it('refuses payloads over the limit when encoding and before decoding', () => {
    const huge: NewEvent = { ...deleted, type: 'SettingsChanged', data: { blob: 'x'.repeat(eventPayloadBytesMax) } };
    catchStrataError(() => encodeEvent(huge), 'STRATA_ERR_CODEC_TOO_LARGE');
    catchStrataError(() => decodeNewEvent(plainPackr.pack(huge)), 'STRATA_ERR_CODEC_TOO_LARGE');
  });

  it('round-trips data and meta on their own, as the SQL store keeps them', () => {
    expect(decodeEventData('ArtifactDeleted', encodeEventData('ArtifactDeleted', { path: 'a/b' }))).toEqual({ path: 'a/b' });
    expect(decodeMeta(encodeMeta({ actor: 'admin', requestId: 'r-1' }))).toEqual({ actor: 'admin', requestId: 'r-1' });
    catchStrataError(() => decodeEventData('ArtifactDeleted', encodeEventData('FolderDeleted', { prefix: '' })), 'STRATA_ERR_EVENT_INVALID');
    catchStrataError(() => decodeMeta(new Uint8Array([0x81])), 'STRATA_ERR_CODEC_MALFORMED');
  });

  it('decode(encode(e)) equals e for every valid new event', () => {
    fc.assert(
      fc.property(arbitraryNewEvent(), (event) => {
        expect(decodeNewEvent(encodeEvent(event))).toEqual(event);
        expect(decodeEventData(event.type, encodeEventData(event.type, event.data))).toEqual(event.data);
        expect(decodeMeta(encodeMeta(event.meta))).toEqual(event.meta);
      }),
    );
  });

  it('decode(encode(e)) equals e for every valid recorded event', () => {
    fc.assert(
      fc.property(arbitraryRecordedEvent(), (event) => {
        expect(decodeRecordedEvent(encodeEvent(event))).toEqual(event);
      }),
    );
  });

  it('refuses every truncation of an encoded event with a StrataError', () => {
    fc.assert(
      fc.property(arbitraryRecordedEvent(), fc.boolean(), fc.nat(), (event, asRecorded, cut) => {
        const bytes = encodeEvent(event);
        const truncated = bytes.subarray(0, cut % bytes.byteLength);
        const error = catchStrataError(() => (asRecorded ? decodeRecordedEvent(truncated) : decodeNewEvent(truncated)));
        expect(error.code).toMatch(/^STRATA_ERR_(CODEC_MALFORMED|EVENT_INVALID|CODEC_UNKNOWN_TYPE)$/);
      }),
    );
  });

  it('throws only StrataErrors for arbitrary bytes and for corrupted encodings', () => {
    fc.assert(
      fc.property(arbitraryNewEvent(), fc.uint8Array({ maxLength: 64 }), fc.nat(), fc.integer({ min: 0, max: 255 }), (event, noise, at, byte) => {
        const corrupted = new Uint8Array(encodeEvent(event));
        corrupted[at % corrupted.byteLength] = byte;
        for (const bytes of [noise, corrupted]) {
          try {
            decodeEvent(bytes);
          } catch (error) {
            expect(isStrataError(error)).toBe(true);
          }
        }
      }),
    );
  });
});

describe('event batches', () => {
  it('round-trip new and recorded events together, in order', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(arbitraryNewEvent(), arbitraryRecordedEvent()), { maxLength: 8 }), (events) => {
        expect(decodeEventBatch(encodeEventBatch(events), { eventsMax: 8 })).toEqual(events);
      }),
      { numRuns: 50 },
    );
  });

  it('of stored events, encoded without validating them again, equal byte for byte the validated encoding of their new-event fields', () => {
    fc.assert(
      fc.property(fc.array(arbitraryRecordedEvent(), { maxLength: 8 }), (events) => {
        // What a store holds and returns: the event as validation left it.
        const stored = events.map((event) => decodeRecordedEvent(encodeEvent(event)));
        const newEvents = stored.map(({ stream: _stream, revision: _revision, position: _position, ...rest }) => rest as NewEvent);
        for (const [index, event] of stored.entries()) expect(Buffer.from(encodeStoredEvent(event))).toEqual(Buffer.from(encodeEvent(newEvents[index]!)));
        const batch = encodeEncodedEventBatch(stored.map(encodeStoredEvent));
        expect(Buffer.from(batch)).toEqual(Buffer.from(encodeEventBatch(newEvents)));
        expect(decodeEventBatch(batch, { eventsMax: 8 })).toEqual(newEvents);
      }),
      { numRuns: 100 },
    );
  });

  it('give their new events deeply frozen and marked as validated, their recorded ones and any copy unmarked', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(arbitraryNewEvent(), arbitraryRecordedEvent()), { maxLength: 6 }), (events) => {
        const decoded = decodeEventBatch(encodeEventBatch(events), { eventsMax: 6 });
        for (const event of decoded) {
          const recorded = 'position' in event;
          expect(isFrozenValidNewEvent(event)).toBe(!recorded);
          expect(isFrozenValidNewEvent({ ...event })).toBe(false);
          if (recorded) continue;
          expect(Object.isFrozen(event) && Object.isFrozen(event.hlc) && Object.isFrozen(event.data) && Object.isFrozen(event.meta)).toBe(true);
          // Nothing inside can change: an assignment throws (ES modules are strict).
          expect(() => {
            (event.meta as Record<string, string>)['actor'] = 'mallory';
          }).toThrow(TypeError);
          if (event.type === 'ArtifactDeployed') {
            expect(Object.isFrozen(event.data.properties)).toBe(true);
            for (const values of Object.values(event.data.properties)) expect(Object.isFrozen(values)).toBe(true);
          }
        }
        expect(isFrozenValidNewEvent(validateNewEvent(events.find((event) => !('position' in event)) ?? deleted))).toBe(false);
      }),
      { numRuns: 100 },
    );
  });

  it('refuse a batch with more events than allowed before decoding any', () => {
    const bytes = encodeEventBatch([deleted, recorded, deleted]);
    const error = catchStrataError(() => decodeEventBatch(bytes, { eventsMax: 2 }), 'STRATA_ERR_CODEC_TOO_LARGE');
    expect(error.details).toMatchObject({ events: 3, eventsMax: 2 });
    const manyHeader = new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff]);
    catchStrataError(() => decodeEventBatch(manyHeader, { eventsMax: 1000 }), 'STRATA_ERR_CODEC_TOO_LARGE');
  });

  it('refuse a batch over its byte limit', () => {
    const bytes = encodeEventBatch([deleted, deleted]);
    catchStrataError(() => decodeEventBatch(bytes, { eventsMax: 2, bytesMax: bytes.byteLength - 1 }), 'STRATA_ERR_CODEC_TOO_LARGE');
  });

  it('refuse a batch that is not an array of binary events', () => {
    catchStrataError(() => decodeEventBatch(plainPackr.pack({ events: [] }), { eventsMax: 2 }), 'STRATA_ERR_CODEC_MALFORMED');
    catchStrataError(() => decodeEventBatch(plainPackr.pack([deleted]), { eventsMax: 2 }), 'STRATA_ERR_CODEC_MALFORMED');
    catchStrataError(() => decodeEventBatch(new Uint8Array(), { eventsMax: 2 }), 'STRATA_ERR_CODEC_MALFORMED');
  });

  it('refuse every truncation of a batch with a StrataError', () => {
    const bytes = encodeEventBatch([deleted, recorded]);
    for (let cut = 0; cut < bytes.byteLength; cut++) {
      catchStrataError(() => decodeEventBatch(bytes.subarray(0, cut), { eventsMax: 2 }));
    }
  });
});
