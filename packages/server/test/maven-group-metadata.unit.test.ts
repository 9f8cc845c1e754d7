import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { defaultGoalPrefix, groupMetadataXml } from '../src/formats/maven/maven-layout.ts';
import { metadataPlugins, pluginDescriptorGoalPrefix, pomPackaging } from '../src/formats/maven/maven-pom.ts';

describe('Maven group-level (plugin) metadata', () => {
  it('reads back every plugin it lists, whatever the characters of names and prefixes', () => {
    const text = fc.string({ minLength: 1, maxLength: 12, unit: fc.constantFrom('a', 'Z', '-', '<', '>', '&', '"', "'", ' ', 'é', '1') }).filter((value) => value.trim() === value);
    fc.assert(
      fc.property(fc.uniqueArray(fc.record({ name: text, prefix: text, artifactId: fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/) }), { selector: (plugin) => plugin.artifactId, maxLength: 6 }), (plugins) => {
        const sorted = [...plugins].sort((a, b) => (a.artifactId < b.artifactId ? -1 : 1));
        expect(metadataPlugins(groupMetadataXml(plugins))).toEqual(sorted);
      }),
    );
  });

  it("derives Maven's default goal prefix from the artifactId", () => {
    expect(defaultGoalPrefix('maven-compiler-plugin')).toBe('compiler');
    expect(defaultGoalPrefix('exec-maven-plugin')).toBe('exec');
    expect(defaultGoalPrefix('maven-plugin-plugin')).toBe('plugin');
    expect(defaultGoalPrefix('strata-demo-maven-plugin')).toBe('strata-demo');
  });

  it('reads a POM packaging (jar by default) and a plugin descriptor goalPrefix', () => {
    expect(pomPackaging('<project><packaging> maven-plugin </packaging><name>X &amp; Y</name></project>')).toEqual({ packaging: 'maven-plugin', name: 'X & Y' });
    expect(pomPackaging('<project><artifactId>a</artifactId></project>')).toEqual({ packaging: 'jar', name: undefined });
    expect(pomPackaging('<project>')).toBeUndefined();
    expect(pluginDescriptorGoalPrefix('<plugin><goalPrefix>demo</goalPrefix><mojos/></plugin>')).toBe('demo');
    expect(pluginDescriptorGoalPrefix('<plugin><mojos/></plugin>')).toBeUndefined();
  });
});
