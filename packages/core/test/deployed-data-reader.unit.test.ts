import { Buffer } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Packr, Unpackr } from 'msgpackr';
import { ArtifactDeployedDataReader, ArtifactTreeFold, type RecordedEvent } from '@strata/core';
import { arbitraryEventsAndDelivery } from './artifact-arbitraries.ts';

// The codec's msgpack options (event-codec.ts) and the store's decoder's (event-copy-reader.ts).
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, bundleStrings: false, int64AsType: 'bigint' });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, moreTypes: false, bundleStrings: false, int64AsType: 'bigint' });

/** Ways a deploy's data can leave the plain shape (or stay in it: reordered keys, odd sizes). */
const MANGLES: Record<string, (data: Record<string, unknown>) => Record<string, unknown>> = {
  'keys reordered': (data) => Object.fromEntries(Object.entries(data).reverse()),
  'a path beyond ASCII': (data) => ({ ...data, path: `ä/${String(data.path)}` }),
  'a path of a look-alike code unit': (data) => ({ ...data, path: `\u0161${String(data.path)}` }),
  'uppercase hex': (data) => ({ ...data, sha256: 'A'.repeat(64) }),
  'a short sha1': (data) => ({ ...data, sha1: 'a'.repeat(39) }),
  'a non-hex md5': (data) => ({ ...data, md5: 'g'.repeat(32) }),
  'a mime type beyond ASCII': (data) => ({ ...data, mimeType: 'text/é' }),
  'a negative size': (data) => ({ ...data, size: -3 }),
  'a fractional size': (data) => ({ ...data, size: 1.5 }),
  'a 16-bit size': (data) => ({ ...data, size: 40_000 }),
  'a 32-bit size': (data) => ({ ...data, size: 3_000_000_000 }),
  'a size past 32 bits': (data) => ({ ...data, size: 2 ** 40 }),
  'a 64-bit integer size': (data) => ({ ...data, size: 2n ** 40n }),
  'an extra field': (data) => ({ ...data, remoteUrl: 'https://remote.example/x' }),
  'no properties': ({ properties: _, ...data }) => data,
  'integer-like property keys': (data) => ({ ...data, properties: { '10': ['a'], '2': ['b'], k1: ['c'] } }),
  'a __proto__ property key': (data) => ({ ...data, properties: JSON.parse('{"__proto__":["x"],"k1":["y"]}') as unknown }),
  'a property key beyond ASCII': (data) => ({ ...data, properties: { 'ké': ['x'] } }),
  'a property value beyond ASCII': (data) => ({ ...data, properties: { k1: ['ü', 'x'] } }),
  'a null property value': (data) => ({ ...data, properties: { k1: null, k2: ['x'] } }),
  'a long property value': (data) => ({ ...data, properties: { k1: ['v'.repeat(300)] } }),
};
const MANGLE_NAMES = Object.keys(MANGLES);

interface Stored {
  readonly event: RecordedEvent;
  readonly data: Buffer;
  readonly plain: boolean;
}

/** Per event type read from bytes, the mangles that leave its data in the plain shape. */
const PLAIN_MANGLES: Record<string, readonly (string | undefined)[]> = {
  ArtifactDeployed: [undefined, 'keys reordered', 'a negative size', 'a fractional size', 'a 16-bit size', 'a 32-bit size', 'a size past 32 bits', 'a long property value'],
  ArtifactDeleted: [undefined, 'keys reordered', 'no properties'],
  PropertiesSet: [undefined, 'keys reordered', 'a long property value'],
};

/** Each event with its data as the store keeps it (msgpack), some deploys', deletes' and property sets' data mangled. */
const arbitraryStored = arbitraryEventsAndDelivery().chain(({ delivery }) =>
  fc.array(fc.option(fc.constantFrom(...MANGLE_NAMES), { nil: undefined, freq: 2 }), { minLength: delivery.length, maxLength: delivery.length }).map((mangles) =>
    delivery.map((event, index): Stored => {
      const plainMangles = PLAIN_MANGLES[event.type];
      const mangle = plainMangles === undefined ? undefined : mangles[index];
      const data = mangle === undefined ? (event.data as Record<string, unknown>) : MANGLES[mangle]!(event.data as Record<string, unknown>);
      return { event, data: Buffer.from(packr.pack(data)), plain: plainMangles !== undefined && plainMangles.includes(mangle) };
    }),
  ),
);

/** The event as the store's generic decoder gives it. */
const decoded = ({ event, data }: Stored): RecordedEvent => ({ ...event, data: unpackr.unpack(data) }) as RecordedEvent;

/** The snapshot of folding `stored` one way, or the error it threw. */
function outcome(fold: (fold: ArtifactTreeFold) => void): unknown {
  try {
    const tree = new ArtifactTreeFold();
    fold(tree);
    return tree.snapshot();
  } catch (error) {
    return { threw: (error as Error).constructor.name };
  }
}

describe('reading ArtifactDeployed, ArtifactDeleted and PropertiesSet data from its msgpack bytes into the fold', () => {
  it('folds to what the decoded events fold to, reads every plain deploy, delete and property set, and leaves anything else to the decoded event', () => {
    fc.assert(
      fc.property(arbitraryStored, (stored) => {
        const reader = new ArtifactDeployedDataReader();
        const generic = outcome((tree) => {
          for (const entry of stored) tree.apply(decoded(entry));
        });
        // Per event, until a fold throws: whether the reader read it.
        const taken: boolean[] = [];
        const direct = outcome((tree) => {
          for (const entry of stored) {
            const { event, data } = entry;
            const read =
              event.type === 'ArtifactDeployed'
                ? reader.read(data, 0, data.length)
                : event.type === 'ArtifactDeleted'
                  ? reader.readDeleted(data, 0, data.length)
                  : event.type === 'PropertiesSet' && reader.readPropertiesSet(data, 0, data.length);
            taken.push(read);
            if (read && event.type === 'ArtifactDeployed') tree.applyDeployedData(event.stream, event.id, event.origin, event.hlc.wall, event.hlc.logical, event.meta.actor, reader);
            else if (read && event.type === 'ArtifactDeleted') tree.applyDeletedData(event.stream, event.origin, event.hlc.wall, event.hlc.logical, reader);
            else if (read) tree.applyPropertiesSetData(event.stream, event.id, event.origin, event.hlc.wall, event.hlc.logical, reader);
            else tree.apply(decoded(entry));
          }
        });
        expect(taken).toEqual(stored.slice(0, taken.length).map((entry) => entry.plain));
        expect(direct).toEqual(generic);
      }),
      { numRuns: 500 },
    );
  });

  it('gives the decoded values of the plain shape, as byte ranges of its input and the checksums as bytes', () => {
    const data = { sha1: 'c'.repeat(40), path: 'org/x/1.0/x-1.0.jar', sha256: '0123456789abcdef'.repeat(4), md5: 'f'.repeat(32), size: 70_000, mimeType: 'application/java-archive', properties: { b: ['1', '2'], a: [] } };
    // At an offset inside a larger buffer, as a row of the scan's COPY output.
    const packed = Buffer.from(packr.pack(data));
    const bytes = Buffer.concat([Buffer.from([0xc1, 0xc1, 0xc1]), packed, Buffer.from([0xc1])]);
    const reader = new ArtifactDeployedDataReader();
    expect(reader.read(bytes, 3, 3 + packed.length)).toBe(true);
    const text = (start: number, length: number) => bytes.toString('latin1', start, start + length);
    expect({
      path: text(reader.pathStart, reader.pathLength),
      sha256: reader.checksums.toString('hex', 0, 32),
      sha1: reader.checksums.toString('hex', 32, 52),
      md5: reader.checksums.toString('hex', 52, 68),
      size: reader.size,
      mimeType: text(reader.mimeTypeStart, reader.mimeTypeLength),
      properties: Object.fromEntries(Array.from({ length: reader.propertyCount }, (_, index) => [text(reader.keyStarts[index]!, reader.keyLengths[index]!), reader.values[index]])),
    }).toEqual(data);
    // One byte short, one byte more, and a cut anywhere: not the plain shape.
    expect(reader.read(bytes, 3, 2 + packed.length)).toBe(false);
    expect(reader.read(bytes, 3, 4 + packed.length)).toBe(false);
    for (let end = 3; end < 3 + packed.length; end++) expect(reader.read(bytes, 3, end)).toBe(false);
  });

  it('leaves a map with a key twice to the decoder (its object keeps the last)', () => {
    const data = { path: 'a/x.jar', sha256: 'a'.repeat(64), sha1: 'a'.repeat(40), md5: 'a'.repeat(32), size: 1, mimeType: 'text/plain', properties: { k1: ['x'], k2: ['y'] } };
    const packed = Buffer.from(packr.pack(data));
    // The second property key 'k2' renamed 'k1' in place (fixstr 'k1' = a2 6b 31).
    const at = packed.lastIndexOf(Buffer.from([0xa2, 0x6b, 0x32]));
    packed[at + 2] = 0x31;
    expect((unpackr.unpack(packed) as typeof data).properties).toEqual({ k1: ['y'] });
    expect(new ArtifactDeployedDataReader().read(packed, 0, packed.length)).toBe(false);
    // 'sha1' renamed 'path': a top-level key twice.
    const twice = Buffer.from(packr.pack(data));
    const sha1 = twice.indexOf(Buffer.from('sha1'));
    twice.write('path', sha1, 'latin1');
    expect(new ArtifactDeployedDataReader().read(twice, 0, twice.length)).toBe(false);
  });
});
