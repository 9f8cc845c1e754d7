import { parseArtifactPath } from './maven/maven-layout.ts';
import { baseName } from './npm/npm-model.ts';
import { distributionCoordinates } from './pypi/pypi-model.ts';

/**
 * The package and version a repository path holds, per format (for curation rules that name
 * packages and versions; see CurationService.registerPackageCoordinates). Undefined for
 * paths that hold no package file (metadata, sidecars, other files).
 */
export interface PathCoordinates {
  readonly name: string;
  readonly version?: string;
}

/** npm: `{name}/-/{basename}-{version}.tgz`, scoped names included. */
export function npmPathCoordinates(path: string): PathCoordinates | undefined {
  const match = /^((?:@[^/]+\/)?[^/@][^/]*)\/-\/([^/]+)\.tgz$/.exec(path);
  if (match === null) return undefined;
  const name = match[1]!;
  const prefix = `${baseName(name)}-`;
  const file = match[2]!;
  return file.startsWith(prefix) ? { name, version: file.slice(prefix.length) } : { name };
}

/**
 * PyPI: from the distribution's file name, so both a local layout (`{name}/{version}/{file}`)
 * and a remote cache in the upstream's layout (`packages/ab/cd/…/{file}`) are named.
 */
export function pypiPathCoordinates(path: string): PathCoordinates | undefined {
  return distributionCoordinates(path.slice(path.lastIndexOf('/') + 1));
}

/** Maven: `groupId:artifactId` and the version folder of a layout path. */
export function mavenPathCoordinates(path: string): PathCoordinates | undefined {
  try {
    const coordinates = parseArtifactPath(path);
    return { name: `${coordinates.groupId}:${coordinates.artifactId}`, version: coordinates.version };
  } catch {
    return undefined;
  }
}
