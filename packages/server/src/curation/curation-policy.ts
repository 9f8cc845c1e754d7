import { compileRepoPatterns, StrataError } from '@strata/core';
import type { Properties, RepoPatterns } from '@strata/core';

/**
 * A curation policy (issue 6): attached to remote repositories; an artifact requested
 * through one of them that matches ANY listed criterion is blocked.
 *
 * - `pathPatterns`: Ant patterns over the repository path.
 * - `packages`: `name` (every version) or `name@version`; `versionPatterns`: globs (`*`, `?`)
 *   over the version. These need package coordinates, which only package formats know: the
 *   generic path flow has none, a format registers an extractor (CurationService).
 * - `properties`: key → accepted values; matches when the cached artifact carries one of
 *   the values (an artifact not cached yet carries none).
 */
export interface CurationPolicy {
  readonly name: string;
  readonly repositories: readonly string[];
  readonly pathPatterns: readonly string[];
  readonly packages: readonly string[];
  readonly versionPatterns: readonly string[];
  readonly properties: Readonly<Record<string, readonly string[]>>;
  readonly enabled: boolean;
}

export interface PackageCoordinates {
  readonly name: string;
  readonly version?: string;
}

export interface CurationSubject {
  readonly repo: string;
  readonly path: string;
  readonly packageCoordinates?: PackageCoordinates;
  readonly properties?: Properties;
}

export const curationPolicyNameCharsMax = 128;
export const curationCriteriaMax = 256;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function invalid(message: string): StrataError {
  return new StrataError('STRATA_ERR_CURATION_POLICY_INVALID', message);
}

function stringList(body: Record<string, unknown>, field: string): string[] {
  const value = body[field];
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((entry) => typeof entry === 'string' && entry.trim() !== '' && entry.length <= 1024)) {
    throw invalid(`'${field}' must be an array of non-empty strings`);
  }
  if (value.length > curationCriteriaMax) throw invalid(`'${field}' may list at most ${curationCriteriaMax} entries`);
  return value.map((entry: string) => entry.trim());
}

export function checkCurationPolicyName(name: string): void {
  if (name.length > curationPolicyNameCharsMax || !NAME.test(name)) {
    throw invalid(`policy name '${name.slice(0, 64)}' must be letters, digits, '.', '_' or '-' (at most ${curationPolicyNameCharsMax})`);
  }
}

/** Validates a PUT body into a policy (400 STRATA_ERR_CURATION_POLICY_INVALID on any fault). */
export function curationPolicyFromBody(name: string, body: unknown): CurationPolicy {
  checkCurationPolicyName(name);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('the policy must be a JSON object');
  const record = body as Record<string, unknown>;
  if (record.name !== undefined && record.name !== name) throw invalid(`the name in the body ('${String(record.name)}') differs from the name in the URL ('${name}')`);
  const repositories = stringList(record, 'repositories');
  if (repositories.length === 0) throw invalid("'repositories' must name at least one remote repository");
  const pathPatterns = stringList(record, 'pathPatterns');
  try {
    compileRepoPatterns({ includesPattern: pathPatterns.join(',') || '**' });
  } catch (error) {
    throw invalid(`'pathPatterns': ${error instanceof Error ? error.message : String(error)}`);
  }
  const packages = stringList(record, 'packages');
  const versionPatterns = stringList(record, 'versionPatterns');
  let properties: Record<string, string[]> = {};
  if (record.properties !== undefined && record.properties !== null) {
    if (typeof record.properties !== 'object' || Array.isArray(record.properties)) throw invalid("'properties' must be an object of key → value or values");
    properties = {};
    for (const [key, value] of Object.entries(record.properties as Record<string, unknown>)) {
      const values = typeof value === 'string' ? [value] : value;
      if (!Array.isArray(values) || !values.every((entry) => typeof entry === 'string')) throw invalid(`'properties.${key}' must be a string or an array of strings`);
      properties[key] = values as string[];
    }
  }
  if (record.enabled !== undefined && typeof record.enabled !== 'boolean') throw invalid("'enabled' must be a boolean");
  if (pathPatterns.length + packages.length + versionPatterns.length + Object.keys(properties).length === 0) {
    throw invalid('a policy needs at least one criterion (pathPatterns, packages, versionPatterns or properties)');
  }
  return { name, repositories, pathPatterns, packages, versionPatterns, properties, enabled: record.enabled !== false };
}

/** A glob over a version: `*` any characters, `?` one; everything else literal. */
export function versionGlobMatches(glob: string, version: string): boolean {
  const source = glob.replace(/[\\^$.+()[\]{}|]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${source}$`, 's').test(version);
}

function splitPackageRule(rule: string): { name: string; version?: string } {
  // '@scope/name@1.0' — the version separator is an '@' after the first character.
  const at = rule.lastIndexOf('@');
  return at > 0 ? { name: rule.slice(0, at), version: rule.slice(at + 1) } : { name: rule };
}

const compiled = new WeakMap<CurationPolicy, RepoPatterns | null>();
function pathPatternsOf(policy: CurationPolicy): RepoPatterns | null {
  let patterns = compiled.get(policy);
  if (patterns === undefined) {
    patterns = policy.pathPatterns.length === 0 ? null : compileRepoPatterns({ includesPattern: policy.pathPatterns.join(',') });
    compiled.set(policy, patterns);
  }
  return patterns;
}

/** Why `policy` blocks `subject` (the criterion), or undefined when it does not. */
export function curationBlockReason(policy: CurationPolicy, subject: CurationSubject): string | undefined {
  if (!policy.enabled || !policy.repositories.includes(subject.repo)) return undefined;
  const patterns = pathPatternsOf(policy);
  if (patterns !== null && subject.path !== '' && patterns.matches(subject.path)) return `path matches ${patterns.includes.join(',')}`;
  const coordinates = subject.packageCoordinates;
  if (coordinates !== undefined) {
    for (const rule of policy.packages) {
      const { name, version } = splitPackageRule(rule);
      if (name !== coordinates.name) continue;
      if (version === undefined) return `package ${name}`;
      if (coordinates.version === version) return `package ${name}@${version}`;
    }
    if (coordinates.version !== undefined) {
      for (const glob of policy.versionPatterns) if (versionGlobMatches(glob, coordinates.version)) return `version ${coordinates.version} matches ${glob}`;
    }
  }
  if (subject.properties !== undefined) {
    for (const [key, accepted] of Object.entries(policy.properties)) {
      const values = subject.properties[key];
      if (values === undefined) continue;
      const hit = values.find((value) => accepted.length === 0 || accepted.includes(value));
      if (hit !== undefined) return `property ${key}=${hit}`;
    }
  }
  return undefined;
}
