import { StrataError } from '@strata/core';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import type { MavenCoordinates } from './maven-layout.ts';

const parser = new XMLParser({ ignoreAttributes: true, parseTagValue: false, processEntities: false });

export interface PomCoordinates {
  readonly groupId: string | undefined;
  readonly artifactId: string | undefined;
  readonly version: string | undefined;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value.trim() : undefined;
}

/** The coordinates a POM declares (groupId and version inherit from its parent). */
export function pomCoordinates(xml: string): PomCoordinates {
  if (XMLValidator.validate(xml) !== true) throw new StrataError('STRATA_ERR_PACKAGE_INVALID', 'the POM is not well-formed XML');
  const document = parser.parse(xml) as Record<string, unknown>;
  const project = document.project;
  if (typeof project !== 'object' || project === null) throw new StrataError('STRATA_ERR_PACKAGE_INVALID', 'the POM has no <project> element');
  const fields = project as Record<string, unknown>;
  const parent = (typeof fields.parent === 'object' && fields.parent !== null ? fields.parent : {}) as Record<string, unknown>;
  return {
    groupId: text(fields.groupId) ?? text(parent.groupId),
    artifactId: text(fields.artifactId),
    version: text(fields.version) ?? text(parent.version),
  };
}

/**
 * Refuses a POM whose coordinates differ from its path (Artifactory's POM consistency check).
 * A value built from a property (`${revision}`) cannot be resolved here and is not compared.
 */
export function checkPomMatchesPath(xml: string, path: MavenCoordinates): void {
  const declared = pomCoordinates(xml);
  const expected: Record<keyof PomCoordinates, string> = { groupId: path.groupId, artifactId: path.artifactId, version: path.version };
  for (const field of ['groupId', 'artifactId', 'version'] as const) {
    const value = declared[field];
    if (value === undefined || value === '') throw new StrataError('STRATA_ERR_PACKAGE_INVALID', `the POM declares no ${field}`);
    if (value.includes('${')) continue;
    if (value !== expected[field]) {
      throw new StrataError('STRATA_ERR_PACKAGE_REFUSED', `the POM's ${field} '${value}' does not match the path's '${expected[field]}'`);
    }
  }
}

/** The versions and lastUpdated (epoch ms, 0 when absent) of an artifact-level maven-metadata.xml. */
export function metadataVersions(xml: string): { versions: string[]; lastUpdated: number } {
  if (XMLValidator.validate(xml) !== true) return { versions: [], lastUpdated: 0 };
  const document = parser.parse(xml) as { metadata?: { versioning?: { versions?: { version?: unknown }; lastUpdated?: unknown } } };
  const versioning = document.metadata?.versioning;
  const listed = versioning?.versions?.version;
  const versions = (Array.isArray(listed) ? listed : listed === undefined ? [] : [listed]).filter((value): value is string => typeof value === 'string').map((value) => value.trim());
  const stamp = typeof versioning?.lastUpdated === 'string' ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/.exec(versioning.lastUpdated.trim()) : null;
  const lastUpdated = stamp === null ? 0 : Date.UTC(Number(stamp[1]), Number(stamp[2]) - 1, Number(stamp[3]), Number(stamp[4]), Number(stamp[5]), Number(stamp[6]));
  return { versions, lastUpdated };
}

/** A POM's `<packaging>` (default `jar`) and `<name>`, or undefined when it is not readable XML. */
export function pomPackaging(xml: string): { packaging: string; name: string | undefined } | undefined {
  if (XMLValidator.validate(xml) !== true) return undefined;
  const project = (parser.parse(xml) as Record<string, unknown>).project;
  if (typeof project !== 'object' || project === null) return undefined;
  const fields = project as Record<string, unknown>;
  const name = text(fields.name);
  return { packaging: text(fields.packaging) || 'jar', name: name === undefined || name === '' ? undefined : unescapeXml(name) };
}

/** The `<goalPrefix>` of a plugin descriptor (`META-INF/maven/plugin.xml`), if it names one. */
export function pluginDescriptorGoalPrefix(xml: string): string | undefined {
  if (XMLValidator.validate(xml) !== true) return undefined;
  const plugin = (parser.parse(xml) as Record<string, unknown>).plugin;
  if (typeof plugin !== 'object' || plugin === null) return undefined;
  const prefix = text((plugin as Record<string, unknown>).goalPrefix);
  return prefix === undefined || prefix === '' ? undefined : prefix;
}

/** The five predefined XML entities and character references (the parser leaves entities alone). */
function unescapeXml(value: string): string {
  const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
  return value.replace(/&(#[0-9]{1,7}|#x[0-9a-fA-F]{1,6}|[a-z]+);/g, (whole, entity: string) => {
    if (entity[0] !== '#') return named[entity] ?? whole;
    const code = entity[1] === 'x' ? Number.parseInt(entity.slice(2), 16) : Number.parseInt(entity.slice(1), 10);
    return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
  });
}

/** The plugins a group-level maven-metadata.xml lists (its own or a remote's); [] when it lists none. */
export function metadataPlugins(xml: string): { name: string; prefix: string; artifactId: string }[] {
  if (XMLValidator.validate(xml) !== true) return [];
  const document = parser.parse(xml) as { metadata?: { plugins?: { plugin?: unknown } } };
  const listed = document.metadata?.plugins?.plugin;
  const plugins = Array.isArray(listed) ? listed : listed === undefined ? [] : [listed];
  return plugins.flatMap((entry) => {
    if (typeof entry !== 'object' || entry === null) return [];
    const fields = entry as Record<string, unknown>;
    const field = (value: unknown) => {
      const found = text(value);
      return found === undefined || found === '' ? undefined : unescapeXml(found);
    };
    const artifactId = field(fields.artifactId);
    const prefix = field(fields.prefix);
    if (artifactId === undefined || prefix === undefined) return [];
    return [{ name: field(fields.name) ?? artifactId, prefix, artifactId }];
  });
}
