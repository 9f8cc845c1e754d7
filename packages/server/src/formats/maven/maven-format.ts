import { createHash } from 'node:crypto';
import { StrataError } from '@strata/core';
import type { EventMeta } from '@strata/core';
import type { BlobLease, BlobStore } from '@strata/store';
import type { ArtifactService } from '../../artifacts/artifact-service.ts';
import type { ArtifactReader, FileItem } from '../../ports.ts';
import {
  artifactMetadataXml,
  compareMavenVersions,
  defaultGoalPrefix,
  groupMetadataXml,
  isSnapshotVersion,
  mavenRepositoryHandles,
  METADATA_FILE,
  parseArtifactPath,
  parseMavenPath,
  snapshotBuilds,
  snapshotMetadataXml,
} from './maven-layout.ts';
import type { ChecksumAlgorithm, GroupPlugin, MavenCoordinates, SnapshotFile } from './maven-layout.ts';
import { checkPomMatchesPath, metadataPlugins, metadataVersions, pluginDescriptorGoalPrefix, pomPackaging } from './maven-pom.ts';
import { BoundedLru } from '../../auth/bounded-lru.ts';
import { readZipEntries } from '../zip-entry.ts';
import type { ResolveOptions, RepositoryContent } from '../../virtual/repository-content.ts';
import type { AccessControl } from '../../auth/access-control.ts';

export type MavenDeployPlan =
  /** A checksum sidecar: verified against the stored file, never stored itself. */
  | { readonly kind: 'checksum'; readonly target: string; readonly algorithm: ChecksumAlgorithm }
  /** Client-uploaded maven-metadata.xml: the repository computes its own; the upload is dropped. */
  | { readonly kind: 'metadata' }
  | {
      readonly kind: 'artifact';
      readonly coordinates: MavenCoordinates;
      /** Runs after the blob is stored and before the event is appended (POM consistency). */
      readonly verify?: (lease: BlobLease) => Promise<void>;
    };

export interface ComputedFile {
  readonly body: Buffer;
  readonly contentType: string;
}

/** Artifact folders of one group looked at for group-level (plugin) metadata. */
const groupArtifactsMax = 1_000;
/** A POM or plugin descriptor read for group-level metadata at most (real ones: a few KiB). */
const descriptorBytesMax = 1024 * 1024;
/** What a POM / a plugin jar says, by blob sha256 (content-addressed: never stale). */
const descriptorsCachedMax = 10_000;

/** Bytes a checksum sidecar body may have (a hex digest, optionally followed by a file name). */
export const checksumBodyBytesMax = 1024;

function hex(algorithm: string, bytes: Uint8Array): string {
  return createHash(algorithm).update(bytes).digest('hex');
}

/**
 * Maven on the plain repository path of a `packageType: maven` repository. Metadata is never
 * stored: `maven-metadata.xml` and every checksum sidecar are computed from the artifact-tree
 * projection (deployed files, their checksums and stamps), so every federated member and every
 * replay serves the same bytes.
 */
export class MavenFormat {
  readonly #artifacts: ArtifactReader;
  readonly #blobs: BlobStore;
  readonly #service: ArtifactService;
  readonly #listEntriesMax: number;
  /** POM blob → its packaging and name (null: unreadable). */
  readonly #poms = new BoundedLru<string, { packaging: string; name: string | undefined } | null>(descriptorsCachedMax);
  /** Plugin jar blob → its descriptor's goalPrefix (null: none). */
  readonly #goalPrefixes = new BoundedLru<string, string | null>(descriptorsCachedMax);

  constructor(options: { artifacts: ArtifactReader; blobs: BlobStore; service: ArtifactService; listEntriesMax: number }) {
    this.#artifacts = options.artifacts;
    this.#blobs = options.blobs;
    this.#service = options.service;
    this.#listEntriesMax = options.listEntriesMax;
  }

  /** Validates a deploy's path against the layout and the repository's release/snapshot policy. */
  planDeploy(repo: string, config: Readonly<Record<string, unknown>>, path: string): MavenDeployPlan {
    const parsed = parseMavenPath(path);
    if (parsed.kind === 'checksum') return parsed;
    if (parsed.kind === 'metadata') return { kind: 'metadata' };
    const { coordinates } = parsed;
    if (coordinates.snapshot && !mavenRepositoryHandles(config, 'snapshot')) {
      throw new StrataError('STRATA_ERR_PACKAGE_REFUSED', `repository '${repo}' does not handle snapshots ('${coordinates.version}')`);
    }
    if (!coordinates.snapshot && !mavenRepositoryHandles(config, 'release')) {
      throw new StrataError('STRATA_ERR_PACKAGE_REFUSED', `repository '${repo}' does not handle releases ('${coordinates.version}')`);
    }
    if (coordinates.extension === 'pom' && config.suppressPomConsistencyChecks !== true) {
      return {
        kind: 'artifact',
        coordinates,
        verify: async (lease) => {
          if (lease.size > 16 * 1024 * 1024) throw new StrataError('STRATA_ERR_PACKAGE_INVALID', 'a POM larger than 16 MiB is not accepted');
          checkPomMatchesPath((await this.#blobs.read(lease.sha256)).toString('utf8'), coordinates);
        },
      };
    }
    return { kind: 'artifact', coordinates };
  }

  /** Checks a deployed sidecar's digest against the file it describes (409 on a mismatch). */
  async verifyChecksum(repo: string, plan: { target: string; algorithm: ChecksumAlgorithm }, body: Buffer): Promise<void> {
    const declared = /^\s*([0-9a-fA-F]+)/.exec(body.toString('latin1'))?.[1]?.toLowerCase();
    if (declared === undefined) throw new StrataError('STRATA_ERR_PACKAGE_INVALID', `a .${plan.algorithm} file holds a hex digest`);
    const actual = await this.checksumOf(repo, plan.target, plan.algorithm);
    // Sidecars of client metadata describe bytes we dropped: nothing to compare them with.
    if (plan.target.endsWith(`/${METADATA_FILE}`)) return;
    if (actual === undefined) throw new StrataError('STRATA_ERR_ARTIFACT_NOT_FOUND', `no file '${plan.target}' to check this ${plan.algorithm} against: deploy the file first`);
    if (actual !== declared) {
      throw new StrataError('STRATA_ERR_BLOB_CHECKSUM_MISMATCH', `the ${plan.algorithm} of '${plan.target}' is ${actual}, not ${declared}`);
    }
  }

  /** After a unique snapshot build was deployed: removes the oldest builds beyond maxUniqueSnapshots. */
  async afterDeploy(repo: string, config: Readonly<Record<string, unknown>>, coordinates: MavenCoordinates, meta: EventMeta): Promise<void> {
    const max = typeof config.maxUniqueSnapshots === 'number' ? config.maxUniqueSnapshots : 0;
    if (!coordinates.snapshot || coordinates.timestamp === undefined || max <= 0) return;
    const folder = this.#versionFolder(coordinates);
    const files = await this.#snapshotFiles(repo, folder);
    const builds = snapshotBuilds(files);
    if (builds.length <= max) return;
    const expired = new Set(builds.slice(0, builds.length - max));
    const paths = files
      .filter(({ coordinates: c }) => c.timestamp !== undefined && expired.has(`${c.timestamp}-${c.buildNumber}`))
      .map((file) => file.path);
    await this.#service.deleteFiles(repo, paths, meta);
  }

  /**
   * A computed file at `path` (maven-metadata.xml or a checksum sidecar), or undefined when the
   * path names a stored file (or nothing).
   */
  async computed(repo: string, path: string): Promise<ComputedFile | undefined> {
    let parsed;
    try {
      parsed = parseMavenPath(path);
    } catch {
      return undefined;
    }
    if (parsed.kind === 'metadata') {
      const xml = await this.metadata(repo, parsed.folder);
      return xml === undefined ? undefined : { body: Buffer.from(xml), contentType: 'application/xml' };
    }
    if (parsed.kind === 'checksum') {
      const digest = await this.checksumOf(repo, parsed.target, parsed.algorithm);
      return digest === undefined ? undefined : { body: Buffer.from(digest), contentType: 'text/plain' };
    }
    return undefined;
  }

  async checksumOf(repo: string, path: string, algorithm: ChecksumAlgorithm): Promise<string | undefined> {
    if (path.endsWith(`/${METADATA_FILE}`)) {
      const xml = await this.metadata(repo, path.slice(0, -METADATA_FILE.length - 1));
      return xml === undefined ? undefined : hex(algorithm, Buffer.from(xml));
    }
    const item = await this.#artifacts.getItem(repo, path);
    if (item?.kind !== 'file') return undefined;
    if (algorithm === 'sha512') return hex('sha512', await this.#blobs.read(item.sha256));
    return item[algorithm];
  }

  /** maven-metadata.xml of a version folder (snapshot level) or an artifact folder; undefined when empty. */
  async metadata(repo: string, folder: string): Promise<string | undefined> {
    const segments = folder.split('/');
    const last = segments[segments.length - 1]!;
    if (isSnapshotVersion(last) && segments.length >= 3) {
      const files = await this.#snapshotFiles(repo, folder);
      if (files.length > 0) {
        const { groupId, artifactId, version } = files[0]!.coordinates;
        return snapshotMetadataXml(groupId, artifactId, version, files);
      }
    }
    if (folder !== '' && segments.length >= 2) {
      const files = await this.#artifactFiles(repo, folder);
      if (files.length > 0) {
        const versions = files.map(({ coordinates }) => coordinates.version);
        const lastUpdated = Math.max(...files.map(({ item }) => item.lastModified));
        return artifactMetadataXml({ groupId: segments.slice(0, -1).join('.'), artifactId: last, versions, lastUpdated });
      }
    }
    // No artifact here: a group folder lists the Maven plugins it holds (prefix resolution).
    if (folder === '') return undefined;
    const plugins = await this.#groupPlugins(repo, folder);
    return plugins.length === 0 ? undefined : groupMetadataXml(plugins);
  }

  /** The layout files of an artifact folder (`{folder}/{version}/{file}`), with their coordinates. */
  async #artifactFiles(repo: string, folder: string): Promise<{ item: FileItem; coordinates: MavenCoordinates }[]> {
    const listed = await this.#artifacts.list(repo, folder, { deep: true, depth: 2, includeFolders: false, limit: this.#listEntriesMax });
    const files: { item: FileItem; coordinates: MavenCoordinates }[] = [];
    for (const item of listed) {
      if (item.kind !== 'file') continue;
      const coordinates = this.#coordinatesOf(item);
      if (coordinates === undefined || `${this.#versionFolder(coordinates)}/` !== `${folder}/${coordinates.version}/`) continue;
      files.push({ item, coordinates });
    }
    return files;
  }

  /**
   * The Maven plugins of a group folder: each artifact folder below it whose newest version's
   * POM says `<packaging>maven-plugin</packaging>`, with the goal prefix its jar's
   * `META-INF/maven/plugin.xml` declares (else Maven's default for the artifactId). POMs and
   * descriptors are read from their blobs and remembered by content hash.
   */
  async #groupPlugins(repo: string, folder: string): Promise<GroupPlugin[]> {
    let children;
    try {
      children = await this.#artifacts.list(repo, folder, { deep: false, includeFolders: true, limit: Math.min(this.#listEntriesMax, groupArtifactsMax) });
    } catch {
      return [];
    }
    const plugins: GroupPlugin[] = [];
    for (const child of children) {
      if (child.kind !== 'folder') continue;
      const files = await this.#artifactFiles(repo, child.path);
      if (files.length === 0) continue;
      const newest = [...new Set(files.map(({ coordinates }) => coordinates.version))].sort(compareMavenVersions).pop()!;
      const main = (extension: string) =>
        files
          .filter(({ coordinates }) => coordinates.version === newest && coordinates.extension === extension && coordinates.classifier === '')
          .sort((a, b) => b.item.lastModified - a.item.lastModified)[0]?.item;
      const pom = main('pom');
      if (pom === undefined) continue;
      const described = await this.#pom(pom);
      if (described?.packaging !== 'maven-plugin') continue;
      const artifactId = child.path.slice(child.path.lastIndexOf('/') + 1);
      const jar = main('jar');
      const prefix = (jar === undefined ? undefined : await this.#goalPrefix(jar)) ?? defaultGoalPrefix(artifactId);
      plugins.push({ name: described.name ?? artifactId, prefix, artifactId });
    }
    return plugins;
  }

  async #pom(file: FileItem): Promise<{ packaging: string; name: string | undefined } | undefined> {
    let known = this.#poms.get(file.sha256);
    if (known === undefined) {
      known = file.size > descriptorBytesMax ? null : (pomPackaging((await this.#blobs.read(file.sha256)).toString('utf8')) ?? null);
      this.#poms.set(file.sha256, known);
    }
    return known ?? undefined;
  }

  async #goalPrefix(jar: FileItem): Promise<string | undefined> {
    let known = this.#goalPrefixes.get(jar.sha256);
    if (known === undefined) {
      try {
        const [descriptor] = await readZipEntries(this.#blobs, jar, `'${jar.path}'`, (name) => name === 'META-INF/maven/plugin.xml', descriptorBytesMax);
        known = descriptor === undefined ? null : (pluginDescriptorGoalPrefix(descriptor.bytes.toString('utf8')) ?? null);
      } catch {
        known = null; // not a readable jar: Maven's default prefix
      }
      this.#goalPrefixes.set(jar.sha256, known);
    }
    return known ?? undefined;
  }

  /**
   * maven-metadata.xml (or a checksum sidecar) through a virtual repository. Artifact-level
   * metadata merges the versions of every member that has the artifact (computed for local
   * members, the remote's own file for remote members); snapshot-level metadata is the first
   * member's in resolution order. A sidecar of a stored or cached file comes from its checksums.
   * Undefined: let the generic resolution answer (e.g. a remote's own sidecar).
   */
  async virtualComputed(content: RepositoryContent, access: AccessControl, virtualKey: string, path: string, options: ResolveOptions): Promise<ComputedFile | undefined> {
    let parsed;
    try {
      parsed = parseMavenPath(path);
    } catch {
      return undefined;
    }
    if (parsed.kind === 'artifact') return undefined;
    if (parsed.kind === 'metadata') {
      const xml = await this.#virtualMetadata(content, access, virtualKey, parsed.folder, options);
      return xml === undefined ? undefined : { body: Buffer.from(xml), contentType: 'application/xml' };
    }
    const { target, algorithm } = parsed;
    if (target.endsWith(`/${METADATA_FILE}`)) {
      const xml = await this.#virtualMetadata(content, access, virtualKey, target.slice(0, -METADATA_FILE.length - 1), options);
      return xml === undefined ? undefined : { body: Buffer.from(hex(algorithm, Buffer.from(xml))), contentType: 'text/plain' };
    }
    const found = await content.item(virtualKey, target, options.principal);
    if (found?.item.kind !== 'file') return undefined;
    const digest = algorithm === 'sha512' ? hex('sha512', await this.#blobs.read(found.item.sha256)) : found.item[algorithm];
    return { body: Buffer.from(digest), contentType: 'text/plain' };
  }

  async #virtualMetadata(content: RepositoryContent, access: AccessControl, virtualKey: string, folder: string, options: ResolveOptions): Promise<string | undefined> {
    const path = `${folder}/${METADATA_FILE}`;
    const found: string[] = [];
    /** Per entry of `found`: the kinds of version its member handles (handleReleases / handleSnapshots). */
    const handled: { release: boolean; snapshot: boolean }[] = [];
    for (const step of await content.steps(virtualKey, path)) {
      if (!access.isAllowed(options.principal, { repo: step.key, path, action: 'read' })) continue;
      let xml: string | undefined;
      if (step.mode === 'stored') {
        xml = await this.metadata(step.key, folder);
      } else {
        try {
          const resolved = await content.ask(step, path, options, virtualKey);
          if (resolved?.kind === 'file') xml = (await this.#blobs.read(resolved.item.sha256)).toString('utf8');
          else if (resolved?.kind === 'stream') {
            resolved.body.destroy();
            const item = await resolved.done;
            if (item !== undefined) xml = (await this.#blobs.read(item.sha256)).toString('utf8');
          }
        } catch {
          // A member that cannot answer (upstream down, curation) contributes nothing to a merge.
        }
      }
      if (xml !== undefined) {
        found.push(xml);
        handled.push({ release: mavenRepositoryHandles(step.repository, 'release'), snapshot: mavenRepositoryHandles(step.repository, 'snapshot') });
      }
    }
    if (found.length === 0) return undefined;
    const last = folder.slice(folder.lastIndexOf('/') + 1);
    if (isSnapshotVersion(last)) return found[0];
    const segments = folder.split('/');
    const merged = found.map(metadataVersions);
    if (merged.every((entry) => entry.versions.length === 0)) {
      // Group level: the plugins of every member, the first member that lists an artifactId wins it.
      const plugins = new Map<string, GroupPlugin>();
      for (const xml of found) for (const plugin of metadataPlugins(xml)) if (!plugins.has(plugin.artifactId)) plugins.set(plugin.artifactId, plugin);
      return plugins.size === 0 ? undefined : groupMetadataXml([...plugins.values()]);
    }
    // A member lists only the versions it handles: a release-only member's stray snapshots (or a
    // snapshot-only member's releases) would name versions the virtual does not serve from it.
    const listed = merged.map((entry, index) => ({
      ...entry,
      versions: entry.versions.filter((version) => handled[index]![isSnapshotVersion(version) ? 'snapshot' : 'release']),
    }));
    const contributing = listed.filter((entry) => entry.versions.length > 0);
    if (contributing.length === 0) return undefined;
    return artifactMetadataXml({
      groupId: segments.slice(0, -1).join('.'),
      artifactId: segments[segments.length - 1]!,
      versions: contributing.flatMap((entry) => entry.versions),
      lastUpdated: Math.max(...contributing.map((entry) => entry.lastUpdated)),
    });
  }

  #versionFolder(coordinates: MavenCoordinates): string {
    return `${coordinates.groupId.replaceAll('.', '/')}/${coordinates.artifactId}/${coordinates.version}`;
  }

  #coordinatesOf(item: FileItem): MavenCoordinates | undefined {
    try {
      return parseArtifactPath(item.path);
    } catch {
      return undefined;
    }
  }

  async #snapshotFiles(repo: string, folder: string): Promise<(SnapshotFile & { path: string })[]> {
    const listed = await this.#artifacts.list(repo, folder, { deep: false, includeFolders: false, limit: this.#listEntriesMax });
    const files: (SnapshotFile & { path: string })[] = [];
    for (const item of listed) {
      if (item.kind !== 'file') continue;
      const coordinates = this.#coordinatesOf(item);
      if (coordinates !== undefined && coordinates.snapshot) files.push({ coordinates, lastModified: item.lastModified, path: item.path });
    }
    return files;
  }
}
