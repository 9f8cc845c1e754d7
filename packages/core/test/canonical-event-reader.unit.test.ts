import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import {
  decodeEvent,
  decodeEventBatchEntry,
  encodeEvent,
  encodeEventData,
  encodeMeta,
  encodeValidatedEventParts,
  isFrozenValidNewEvent,
  isRecordedEvent,
  isStrataError,
  validateNewEvent,
  type NewEvent,
} from '../src/index.ts';
import { readCanonicalNewEvent } from '../src/canonical-event-reader.ts';
import { arbitraryEventId, arbitraryHlcStamp, arbitraryNewEvent, arbitraryRecordedEvent, arbitrarySiteId } from './arbitraries.ts';

/** The codec's own settings, as the general path decodes with them. */
const codecPackr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, bundleStrings: false, int64AsType: 'bigint' });
/** Another writer's choices: fixmaps and small headers (msgpack's "preferred" form), float32 where it fits. */
const otherPackr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true, useFloat32: 1 });

const deploy: NewEvent = {
  id: 'evt-1',
  origin: 'site-a',
  originSeq: 300,
  hlc: { wall: 1_765_000_000_000, logical: 70_000 },
  type: 'ArtifactDeployed',
  data: {
    path: 'libs/a/b-1.0.jar',
    sha256: 'a'.repeat(64),
    sha1: 'b'.repeat(40),
    md5: 'c'.repeat(32),
    size: 1024,
    mimeType: 'application/java-archive',
    properties: { 'build.name': ['x', 'y'], colour: [] },
  },
  meta: { actor: 'admin', originPrev: 'd'.repeat(64) },
};

const hex = (length: number): fc.Arbitrary<string> => fc.stringMatching(new RegExp(`^[0-9a-f]{${length}}$`));

/** Deploys as they mostly travel: ASCII throughout, which the reader reads in place. */
const arbitraryAsciiDeploy: fc.Arbitrary<NewEvent> = fc.record({
  id: arbitraryEventId,
  origin: arbitrarySiteId,
  originSeq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  hlc: arbitraryHlcStamp,
  type: fc.constant('ArtifactDeployed' as const),
  data: fc.record({
    path: fc.stringMatching(/^[a-z0-9_-]{1,8}(\/[a-z0-9_-]{1,40}){0,3}$/),
    sha256: hex(64),
    sha1: hex(40),
    md5: hex(32),
    size: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
    mimeType: fc.constantFrom('application/octet-stream', 'text/plain'),
    properties: fc.dictionary(fc.stringMatching(/^[a-z][a-z.]{0,300}$/), fc.array(fc.stringMatching(/^[ -~]{0,70}$/), { maxLength: 17 }), { maxKeys: 3, noNullPrototype: true }),
  }),
  meta: fc.record({ actor: fc.stringMatching(/^[a-z]{1,40}$/), originPrev: hex(64) }, { requiredKeys: [] }),
});

/** What decoding an entry gives, or its refusal, by the general path alone (msgpackr, validation). */
function generalPath(bytes: Uint8Array): { event: unknown; data?: Buffer; meta?: Buffer } | { code: string; message: string } {
  try {
    const event = decodeEvent(bytes);
    if (isRecordedEvent(event)) return { event };
    return { event, data: Buffer.from(encodeEventData(event.type, event.data)), meta: Buffer.from(encodeMeta(event.meta)) };
  } catch (error) {
    if (!isStrataError(error)) throw error;
    return { code: error.code, message: error.message };
  }
}

/** What decodeEventBatchEntry gives (the fast path where it applies), in the same terms. */
function entryPath(bytes: Uint8Array): { event: unknown; data?: Buffer; meta?: Buffer } | { code: string; message: string } {
  try {
    const event = decodeEventBatchEntry(bytes, 0);
    if (isRecordedEvent(event)) return { event };
    const parts = encodeValidatedEventParts(event);
    return { event, data: Buffer.from(parts.data), meta: Buffer.from(parts.meta) };
  } catch (error) {
    if (!isStrataError(error)) throw error;
    return { code: error.code, message: error.message };
  }
}

/** Whether the data kept for `event` is a view into `bytes`: the fast path took it. */
function readInPlace(bytes: Uint8Array): boolean {
  const event = decodeEventBatchEntry(bytes, 0);
  return !isRecordedEvent(event) && encodeValidatedEventParts(event).data.buffer === bytes.buffer;
}

describe('the canonical new-event reader', () => {
  it("reads the codec's encoding of a deploy in place: the same event, frozen and marked, its data and meta the codec's bytes", () => {
    const bytes = encodeEvent(deploy);
    const read = readCanonicalNewEvent(bytes);
    expect(read).toBeDefined();
    expect(read!.event).toEqual(deploy);
    expect(Object.keys(read!.event)).toEqual(Object.keys(validateNewEvent(deploy)));
    expect(Buffer.from(read!.data)).toEqual(Buffer.from(encodeEventData('ArtifactDeployed', deploy.data)));
    expect(Buffer.from(read!.meta)).toEqual(Buffer.from(encodeMeta(deploy.meta)));
    expect(readInPlace(bytes)).toBe(true);
    const event = decodeEventBatchEntry(bytes, 0) as NewEvent;
    expect(isFrozenValidNewEvent(event)).toBe(true);
    expect(Object.isFrozen(event) && Object.isFrozen(event.hlc) && Object.isFrozen(event.data) && Object.isFrozen(event.meta)).toBe(true);
    if (event.type !== 'ArtifactDeployed') throw new Error('not a deploy');
    expect(Object.isFrozen(event.data.properties) && Object.isFrozen(event.data.properties['build.name'])).toBe(true);
  });

  it('leaves every other form of the same event to the general path, which stores the codec’s bytes', () => {
    const { data, meta, ...envelope } = deploy;
    const { properties, ...fields } = data as { properties: unknown };
    // properties first: validation puts it last.
    const reordered = { ...envelope, data: { properties, ...fields }, meta };
    const forms: Uint8Array[] = [
      otherPackr.pack(deploy), // fixmaps
      codecPackr.pack(reordered), // data's fields in another order: validation reorders them
      codecPackr.pack({ ...deploy, meta: { ...deploy.meta, actor: 'adm\u00efn' } }), // not ASCII
      codecPackr.pack({ ...deploy, originSeq: 300.5 }), // refused by validation
      codecPackr.pack({ ...deploy, data: { ...deploy.data, properties: { '7': ['x'], a: ['y'] } } }), // an index key
    ];
    // A uint16 where a fixint fits (originSeq 5), and a float64 for an integer (size 1024).
    const small = codecPackr.pack({ ...deploy, originSeq: 5 });
    const at = Buffer.from(small).indexOf(Buffer.from([0xa9, ...Buffer.from('originSeq'), 0x05]));
    forms.push(Buffer.concat([small.subarray(0, at + 10), Buffer.from([0xcd, 0x00, 0x05]), small.subarray(at + 11)]));
    const sized = Buffer.from(codecPackr.pack(deploy));
    const sizeAt = sized.indexOf(Buffer.from([0xa4, ...Buffer.from('size'), 0xcd, 0x04, 0x00]));
    const float = Buffer.alloc(9);
    float[0] = 0xcb;
    float.writeDoubleBE(1024, 1);
    forms.push(Buffer.concat([sized.subarray(0, sizeAt + 5), float, sized.subarray(sizeAt + 8)]));
    for (const [index, bytes] of forms.entries()) {
      expect(readCanonicalNewEvent(bytes), `form ${index}`).toBeUndefined();
      expect(entryPath(bytes)).toEqual(generalPath(bytes));
    }
  });

  it('gives, for any new or recorded event, the same event, bytes or refusal as the general path; any byte changed or cut too', () => {
    let inPlace = 0;
    fc.assert(
      fc.property(
        fc.oneof(arbitraryNewEvent(), arbitraryRecordedEvent(), arbitraryAsciiDeploy, arbitraryAsciiDeploy),
        fc.constantFrom('codec', 'codec', 'other', 'changed', 'cut'),
        fc.nat(),
        fc.integer({ min: 0, max: 255 }),
        (event, form, at, byte) => {
          let bytes: Uint8Array = form === 'other' ? otherPackr.pack(event) : encodeEvent(event);
          if (form === 'changed') {
            bytes = Uint8Array.from(bytes);
            bytes[at % bytes.byteLength] = byte;
          } else if (form === 'cut') bytes = bytes.subarray(0, at % bytes.byteLength);
          const expected = generalPath(bytes);
          expect(entryPath(bytes)).toEqual(expected);
          const read = readCanonicalNewEvent(bytes);
          if (read === undefined) return;
          inPlace++;
          expect(read.event).toEqual((expected as { event: unknown }).event);
          expect(Buffer.from(read.data)).toEqual((expected as { data: Buffer }).data);
          expect(Buffer.from(read.meta)).toEqual((expected as { meta: Buffer }).meta);
        },
      ),
      { numRuns: 600 },
    );
    // The property says something about the reader only if it read some in place.
    expect(inPlace).toBeGreaterThan(50);
  });

  it('gives the general path’s result for arbitrary msgpack values shaped like an event', () => {
    const anyValue = fc.letrec<{ value: unknown }>((tie) => ({
      value: fc.oneof(
        { depthSize: 'small', maxDepth: 3 },
        fc.constant(null),
        fc.boolean(),
        fc.integer(),
        fc.double(),
        fc.string({ maxLength: 40 }),
        fc.array(tie('value'), { maxLength: 20 }),
        fc.dictionary(fc.string({ maxLength: 6 }), tie('value'), { maxKeys: 4, noNullPrototype: true }),
      ),
    })).value;
    fc.assert(
      fc.property(fc.oneof(arbitraryAsciiDeploy, arbitraryNewEvent({ types: ['UserSaved'] })), anyValue, fc.constantFrom('data', 'meta', 'hlc', 'originSeq', 'id'), (event, value, field) => {
        const bytes = codecPackr.pack({ ...event, [field]: value });
        expect(entryPath(bytes)).toEqual(generalPath(bytes));
      }),
      { numRuns: 400 },
    );
  });
});
