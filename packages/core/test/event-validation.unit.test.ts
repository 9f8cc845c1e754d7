import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  EVENT_TYPES,
  hlcLogicalMax,
  isRecordedEvent,
  isStrataError,
  validateEventData,
  validateEventMeta,
  validateNewEvent,
  validateRecordedEvent,
  type NewEvent,
  type RecordedEvent,
} from '../src/index.ts';
import { arbitraryNewEvent, arbitraryRecordedEvent } from './arbitraries.ts';
import { catchStrataError } from './strata-error-assertions.ts';

const deployed: NewEvent = {
  id: 'ifMM0HnvS4GI1lZg4M_Fag-0',
  origin: 'site-a',
  originSeq: 1,
  hlc: { wall: 1_700_000_000_000, logical: 0 },
  type: 'ArtifactDeployed',
  data: {
    path: 'org/acme/lib/1.0/lib-1.0.jar',
    sha256: 'a'.repeat(64),
    sha1: 'b'.repeat(40),
    md5: 'c'.repeat(32),
    size: 1024,
    mimeType: 'application/java-archive',
    properties: { 'build.number': ['42'], team: [] },
  },
  meta: { actor: 'admin', requestId: 'req-1' },
};

const recorded: RecordedEvent = { ...deployed, stream: 'repo-libs-release-local', revision: 0, position: 17n };

/** `deployed` with one field replaced; `undefined` as value deletes it. */
function withField(field: string, value: unknown, base: object = deployed): Record<string, unknown> {
  const copy = structuredClone(base) as Record<string, unknown>;
  const [outer, inner] = field.split('.');
  const target = (inner === undefined ? copy : copy[outer ?? '']) as Record<string, unknown>;
  const key = inner ?? outer ?? '';
  if (value === undefined) delete target[key];
  else target[key] = value;
  return copy;
}

function refusedField(value: unknown, validate: (value: unknown) => unknown = validateNewEvent): unknown {
  return catchStrataError(() => validate(value), 'STRATA_ERR_EVENT_INVALID').details?.['field'];
}

describe('validateNewEvent', () => {
  it('returns an equal copy of a valid event', () => {
    const valid = validateNewEvent(deployed);
    expect(valid).toEqual(deployed);
    expect(valid).not.toBe(deployed);
  });

  it('refuses an envelope field that is missing or malformed, naming it', () => {
    const cases: [string, unknown][] = [
      ['id', undefined],
      ['id', ''],
      ['id', 'a/b'],
      ['id', 'x'.repeat(65)],
      ['origin', '-site'],
      ['origin', 'site a'],
      ['origin', 's'.repeat(65)],
      ['originSeq', 0],
      ['originSeq', 1.5],
      ['originSeq', 2 ** 53],
      ['originSeq', '1'],
      ['hlc', { wall: -1, logical: 0 }],
      ['hlc', { wall: 1, logical: hlcLogicalMax + 1 }],
      ['hlc', { wall: 1 }],
      ['meta', { actor: 42 }],
      ['meta', 'admin'],
    ];
    for (const [field, value] of cases) {
      expect(String(refusedField(withField(field, value)))).toMatch(new RegExp(`^${field}`));
    }
  });

  it('refuses fields it does not know, on the envelope and in data', () => {
    expect(refusedField({ ...deployed, extra: 1 })).toBe('extra');
    expect(refusedField(withField('data.extra', 1))).toBe('data.extra');
  });

  it('refuses the fields a store assigns, which a new event must not carry', () => {
    expect(refusedField(recorded)).toBe('stream');
  });

  it('refuses an unknown event type as its own error', () => {
    const error = catchStrataError(() => validateNewEvent({ ...deployed, type: 'ArtifactTeleported' }), 'STRATA_ERR_CODEC_UNKNOWN_TYPE');
    expect(error.details?.['type']).toBe('ArtifactTeleported');
    expect(refusedField({ ...deployed, type: 7 })).toBe('type');
  });

  it('checks checksums as lowercase hex of the right length and sizes as non-negative safe integers', () => {
    expect(refusedField(withField('data.sha256', 'A'.repeat(64)))).toBe('data.sha256');
    expect(refusedField(withField('data.sha256', 'a'.repeat(63)))).toBe('data.sha256');
    expect(refusedField(withField('data.sha1', 'g'.repeat(40)))).toBe('data.sha1');
    expect(refusedField(withField('data.md5', 'a'.repeat(40)))).toBe('data.md5');
    expect(refusedField(withField('data.size', -1))).toBe('data.size');
    expect(refusedField(withField('data.size', Number.NaN))).toBe('data.size');
    expect(refusedField(withField('data.size', 10n))).toBe('data.size');
  });

  it('accepts only paths already in normal form, and no root for an artifact', () => {
    for (const path of ['/org/a.jar', 'org/a.jar/', 'org/../a.jar', 'org//a.jar', '', 'a\u0000b']) {
      expect(refusedField(withField('data.path', path))).toBe('data.path');
    }
    expect(catchStrataError(() => validateNewEvent(withField('data.path', 'a/../b'))).message).toMatch(/data\.path.*'\.\.'/);
  });

  it('lets a folder delete and property edits address the repository root', () => {
    const base = { ...deployed, type: 'FolderDeleted', data: { prefix: '' } };
    expect(validateNewEvent(base).data).toEqual({ prefix: '' });
    expect(validateNewEvent({ ...deployed, type: 'PropertiesRemoved', data: { path: '', keys: ['a'] } }).type).toBe('PropertiesRemoved');
  });

  it('checks properties as non-empty keys of at most 255 characters mapping to arrays of strings', () => {
    expect(refusedField(withField('data.properties', { '': ['x'] }))).toBe('data.properties.');
    expect(refusedField(withField('data.properties', { ['k'.repeat(256)]: ['x'] }))).toMatch(/^data\.properties\.k+$/);
    expect(refusedField(withField('data.properties', { team: 'core' }))).toBe('data.properties.team');
    expect(refusedField(withField('data.properties', { team: ['core', 1] }))).toBe('data.properties.team[1]');
    expect(refusedField(withField('data.properties', JSON.parse('{"__proto__":["x"]}')))).toBe('data.properties.__proto__');
  });

  it('validates repository keys and free-form configuration as JSON data', () => {
    const created = (data: unknown) => ({ ...deployed, type: 'RepositoryCreated', data });
    expect(validateNewEvent(created({ key: 'libs-local', config: { rclass: 'local', nested: [{ a: null }] } })).data).toEqual({
      key: 'libs-local',
      config: { rclass: 'local', nested: [{ a: null }] },
    });
    expect(refusedField(created({ key: '1libs', config: {} }))).toBe('data.key');
    expect(refusedField(created({ key: 'libs', config: { when: new Date(0) } }))).toBe('data.config.when');
    expect(refusedField(created({ key: 'libs', config: { n: Number.POSITIVE_INFINITY } }))).toBe('data.config.n');
    expect(refusedField(created({ key: 'libs', config: { u: undefined } }))).toBe('data.config.u');
    expect(refusedField(created({ key: 'libs', config: { s: 'a\udc00' } }))).toBe('data.config.s');
    let deep: unknown = 1;
    for (let level = 0; level < 40; level++) deep = [deep];
    expect(String(refusedField(created({ key: 'libs', config: { deep } })))).toMatch(/^data\.config\.deep/);
  });

  it('drops undefined meta values and keeps unknown string ones', () => {
    expect(validateEventMeta({ actor: undefined, requestId: 'r', userAgent: 'npm/10' })).toEqual({ requestId: 'r', userAgent: 'npm/10' });
    expect(refusedField({ agent: 'x'.repeat(2000) }, validateEventMeta)).toBe('meta.agent');
  });

  it('refuses values that are not plain objects', () => {
    for (const value of [null, undefined, 'event', 42, [deployed], new Map()]) {
      catchStrataError(() => validateNewEvent(value), 'STRATA_ERR_EVENT_INVALID');
    }
  });

  it('accepts every event the shared arbitraries generate, unchanged', () => {
    fc.assert(
      fc.property(arbitraryNewEvent(), (event) => {
        expect(validateNewEvent(event)).toEqual(event);
      }),
    );
  });

  it('throws only StrataErrors when fed mutated events', () => {
    const junk = fc.oneof(fc.constant(undefined), fc.constant(null), fc.integer(), fc.double(), fc.string(), fc.bigInt(), fc.array(fc.anything()), fc.object());
    const fields = ['id', 'origin', 'originSeq', 'hlc', 'type', 'data', 'meta', 'stream', 'revision', 'position', 'hlc.wall', 'hlc.logical'];
    fc.assert(
      fc.property(arbitraryRecordedEvent(), fc.constantFrom(...fields), junk, fc.boolean(), (event, field, value, asRecorded) => {
        const mutated = withField(field, value, event);
        try {
          if (asRecorded) validateRecordedEvent(mutated);
          else validateNewEvent(mutated);
        } catch (error) {
          expect(isStrataError(error)).toBe(true);
        }
      }),
    );
  });
});

describe('validateRecordedEvent', () => {
  it('returns an equal copy of a valid recorded event', () => {
    expect(validateRecordedEvent(recorded)).toEqual(recorded);
    expect(isRecordedEvent(recorded)).toBe(true);
    expect(isRecordedEvent(deployed)).toBe(false);
  });

  it('refuses a missing stream, a negative or fractional revision and a position that is not a non-negative int64 bigint', () => {
    const cases: [string, unknown][] = [
      ['stream', undefined],
      ['stream', ''],
      ['stream', 'repo/libs'],
      ['revision', -1],
      ['revision', 0.5],
      ['position', 17],
      ['position', -1n],
      ['position', 2n ** 63n],
    ];
    for (const [field, value] of cases) expect(refusedField(withField(field, value, recorded), validateRecordedEvent)).toBe(field);
  });

  it('accepts every recorded event the shared arbitraries generate, unchanged', () => {
    fc.assert(
      fc.property(arbitraryRecordedEvent(), (event) => {
        expect(validateRecordedEvent(event)).toEqual(event);
      }),
    );
  });
});

describe('validateEventData', () => {
  it('knows a validator for every event type', () => {
    for (const type of EVENT_TYPES) {
      try {
        validateEventData(type, {});
      } catch (error) {
        expect(isStrataError(error, 'STRATA_ERR_EVENT_INVALID')).toBe(true);
      }
    }
  });
});
