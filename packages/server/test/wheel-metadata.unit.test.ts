import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkCoreMetadata, coreMetadataFields } from '../src/formats/pypi/wheel-metadata.ts';

describe('core metadata (a wheel METADATA)', () => {
  it('reads Name and Version from the headers, the first of each, never from the body', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,20}$/), fc.stringMatching(/^[0-9]{1,3}(\.[0-9]{1,3}){0,3}$/), fc.boolean(), (name, version, crlf) => {
        const eol = crlf ? '\r\n' : '\n';
        const text = ['Metadata-Version: 2.1', `Name: ${name}`, `Version:   ${version}  `, 'Name: second', 'Summary: x', '', 'Name: in-the-body', 'Version: 9'].join(eol);
        expect(coreMetadataFields(text)).toEqual({ name, version });
      }),
    );
    expect(coreMetadataFields('Summary: x\n\nName: body\nVersion: 1')).toEqual({ name: undefined, version: undefined });
  });

  it('accepts the project and version spelt differently (normalised), refuses others with a typed error', () => {
    const text = 'Metadata-Version: 2.1\nName: Strata_Demo\nVersion: 1.0rc1\n\n';
    expect(() => checkCoreMetadata(text, 'f.whl', 'strata-demo', '1.0RC1')).not.toThrow();
    expect(() => checkCoreMetadata(text, 'f.whl', 'other', '1.0rc1')).toThrow(expect.objectContaining({ code: 'STRATA_ERR_PACKAGE_METADATA_MISMATCH', status: 400 }));
    expect(() => checkCoreMetadata(text, 'f.whl', 'strata-demo', '1.0')).toThrow(expect.objectContaining({ code: 'STRATA_ERR_PACKAGE_METADATA_MISMATCH' }));
    expect(() => checkCoreMetadata('Summary: none\n', 'f.whl', 'strata-demo', '1.0')).toThrow(expect.objectContaining({ code: 'STRATA_ERR_PACKAGE_INVALID' }));
  });
});
