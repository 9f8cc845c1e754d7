import { StrataError } from '@strata/core';

/**
 * PyPI's model (pure): names (PEP 503 normalisation), versions (PEP 440), distribution file
 * names (wheel: PEP 427/491, sdist: PEP 625 and the older `.zip`), and the simple index
 * (PEP 503 HTML, PEP 691 JSON).
 *
 * Layout (Artifactory's): `{normalised name}/{version}/{file name}` with properties
 * `pypi.name`, `pypi.normalized.name`, `pypi.version`, `pypi.requires_python`, `pypi.summary`,
 * and for a wheel `pypi.core_metadata.sha256` (the sha256 of its METADATA, for PEP 658/714).
 */
export const PYPI_PROPERTY = {
  name: 'pypi.name',
  normalizedName: 'pypi.normalized.name',
  version: 'pypi.version',
  requiresPython: 'pypi.requires_python',
  summary: 'pypi.summary',
  coreMetadataSha256: 'pypi.core_metadata.sha256',
} as const;

/** PEP 658: a distribution's core metadata is served at its URL with this suffix. */
export const CORE_METADATA_SUFFIX = '.metadata';

export const SIMPLE_JSON = 'application/vnd.pypi.simple.v1+json';
export const SIMPLE_HTML = 'application/vnd.pypi.simple.v1+html';

const NAME = /^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$/i;
// PEP 440 (the `packaging` library's VERSION_PATTERN): digits and letters with single separators, no '/'.
const VERSION =
  /^v?(?:(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)*(?:[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?[0-9]*)?(?:-[0-9]+|[-_.]?(?:post|rev|r)[-_.]?[0-9]*)?(?:[-_.]?dev[-_.]?[0-9]*)?)(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?$/i;

function invalid(message: string): StrataError {
  return new StrataError('STRATA_ERR_PACKAGE_INVALID', message);
}

/** PEP 503: runs of `-`, `_`, `.` become one `-`, lower case. */
export function normalizeName(name: string): string {
  return name.replace(/[-_.]+/g, '-').toLowerCase();
}

export function checkProjectName(name: string): void {
  if (name.length > 200 || !NAME.test(name)) throw invalid(`'${name}' is not a valid Python project name`);
}

export function checkVersion(version: string): void {
  if (version.length > 128 || !VERSION.test(version)) throw invalid(`'${version}' is not a valid PEP 440 version`);
}

/** Comparable form of a version for file-name checks (case, leading v, separators). */
function versionKey(version: string): string {
  return version.toLowerCase().replace(/^v/, '').replace(/[-_]/g, '.');
}

export type DistributionKind = 'bdist_wheel' | 'sdist';

/**
 * Checks that a distribution's file name names the project and version it is uploaded as, and
 * fits its file type; returns its kind. Throws 400 otherwise.
 */
export function checkDistributionFile(fileName: string, name: string, version: string, filetype: string): DistributionKind {
  if (fileName.length > 255 || !/^[A-Za-z0-9][A-Za-z0-9._+!-]*$/.test(fileName)) throw invalid(`'${fileName}' is not a valid distribution file name`);
  const project = normalizeName(name);
  if (fileName.endsWith('.whl')) {
    if (filetype !== 'bdist_wheel') throw invalid(`'${fileName}' is a wheel, but the upload says filetype '${filetype}'`);
    const parts = fileName.slice(0, -4).split('-');
    if (parts.length !== 5 && parts.length !== 6) throw invalid(`'${fileName}' is not a wheel file name (name-version[-build]-python-abi-platform.whl)`);
    if (normalizeName(parts[0]!) !== project) throw invalid(`wheel '${fileName}' belongs to project '${parts[0]}', not '${name}'`);
    if (versionKey(parts[1]!) !== versionKey(version)) throw invalid(`wheel '${fileName}' has version '${parts[1]}', not '${version}'`);
    return 'bdist_wheel';
  }
  const extension = ['.tar.gz', '.zip'].find((candidate) => fileName.endsWith(candidate));
  if (extension === undefined) throw invalid(`'${fileName}' is neither a wheel (.whl) nor an sdist (.tar.gz, .zip)`);
  if (filetype !== 'sdist') throw invalid(`'${fileName}' is an sdist, but the upload says filetype '${filetype}'`);
  const stem = fileName.slice(0, -extension.length);
  const dash = stem.lastIndexOf('-');
  if (dash <= 0) throw invalid(`'${fileName}' is not an sdist file name (name-version${extension})`);
  if (normalizeName(stem.slice(0, dash)) !== project) throw invalid(`sdist '${fileName}' belongs to project '${stem.slice(0, dash)}', not '${name}'`);
  if (versionKey(stem.slice(dash + 1)) !== versionKey(version)) throw invalid(`sdist '${fileName}' has version '${stem.slice(dash + 1)}', not '${version}'`);
  return 'sdist';
}

/**
 * The normalised project and the version a distribution file name carries (wheel or sdist),
 * or undefined for any other file. For curation rules on files whose path says nothing (a
 * remote's cache keeps the upstream's layout, e.g. `packages/ab/cd/…/name-1.0.whl`).
 */
export function distributionCoordinates(fileName: string): { name: string; version: string } | undefined {
  if (fileName.endsWith('.whl')) {
    const parts = fileName.slice(0, -4).split('-');
    if (parts.length !== 5 && parts.length !== 6) return undefined;
    return { name: normalizeName(parts[0]!), version: parts[1]! };
  }
  const extension = ['.tar.gz', '.zip', '.tar.bz2', '.tgz'].find((candidate) => fileName.endsWith(candidate));
  if (extension === undefined) return undefined;
  const stem = fileName.slice(0, -extension.length);
  const dash = stem.lastIndexOf('-');
  return dash <= 0 ? undefined : { name: normalizeName(stem.slice(0, dash)), version: stem.slice(dash + 1) };
}

/** The first bytes a distribution of this file name must start with (zip or gzip). */
export function checkDistributionContent(fileName: string, head: Buffer): void {
  const zip = head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
  const gzip = head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
  if (fileName.endsWith('.tar.gz') ? !gzip : !zip) throw invalid(`'${fileName}' is not a ${fileName.endsWith('.tar.gz') ? 'gzip' : 'zip'} file`);
}

export interface IndexFile {
  readonly fileName: string;
  readonly url: string;
  /** Unknown for an upstream file whose index gave no sha256. */
  readonly sha256: string | undefined;
  readonly requiresPython: string | undefined;
  /** PEP 592: yanked (true, or the reason given). */
  readonly yanked?: string | true;
  /** PEP 658/714: the sha256 of the core metadata served at `{url}.metadata`, when there is one. */
  readonly coreMetadataSha256?: string;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function yankedAttribute(yanked: string | true | undefined): string {
  if (yanked === undefined) return '';
  return yanked === true ? ' data-yanked=""' : ` data-yanked="${escapeHtml(yanked)}"`;
}

/** PEP 714's `data-core-metadata`, and PEP 658's `data-dist-info-metadata` for older clients (pip < 23.3). */
function coreMetadataAttributes(sha256: string | undefined): string {
  return sha256 === undefined ? '' : ` data-dist-info-metadata="sha256=${sha256}" data-core-metadata="sha256=${sha256}"`;
}

export function projectListHtml(names: readonly string[]): string {
  const links = names.map((name) => `    <a href="${escapeHtml(name)}/">${escapeHtml(name)}</a><br/>`);
  return `<!DOCTYPE html>\n<html>\n  <head><meta name="pypi:repository-version" content="1.0"><title>Simple index</title></head>\n  <body>\n${links.join('\n')}\n  </body>\n</html>\n`;
}

export function projectListJson(names: readonly string[]): string {
  return JSON.stringify({ meta: { 'api-version': '1.0' }, projects: names.map((name) => ({ name })) });
}

export function projectPageHtml(name: string, files: readonly IndexFile[]): string {
  const links = files.map(
    (file) =>
      `    <a href="${escapeHtml(file.sha256 === undefined ? file.url : `${file.url}#sha256=${file.sha256}`)}"${file.requiresPython === undefined ? '' : ` data-requires-python="${escapeHtml(file.requiresPython)}"`}${yankedAttribute(file.yanked)}${coreMetadataAttributes(file.coreMetadataSha256)}>${escapeHtml(file.fileName)}</a><br/>`,
  );
  return `<!DOCTYPE html>\n<html>\n  <head><meta name="pypi:repository-version" content="1.0"><title>Links for ${escapeHtml(name)}</title></head>\n  <body>\n    <h1>Links for ${escapeHtml(name)}</h1>\n${links.join('\n')}\n  </body>\n</html>\n`;
}

export function projectPageJson(name: string, files: readonly IndexFile[]): string {
  return JSON.stringify({
    meta: { 'api-version': '1.0' },
    name,
    files: files.map((file) => ({
      filename: file.fileName,
      url: file.url,
      hashes: file.sha256 === undefined ? {} : { sha256: file.sha256 },
      ...(file.requiresPython === undefined ? {} : { 'requires-python': file.requiresPython }),
      ...(file.yanked === undefined ? {} : { yanked: file.yanked }),
      // PEP 714's key, and PEP 691's original one for clients that read only that.
      ...(file.coreMetadataSha256 === undefined ? {} : { 'core-metadata': { sha256: file.coreMetadataSha256 }, 'dist-info-metadata': { sha256: file.coreMetadataSha256 } }),
    })),
  });
}

/**
 * PEP 691 content negotiation: JSON when the client ranks it at least as high as HTML,
 * HTML otherwise (and when it names neither).
 */
export function wantsJson(accept: string | undefined): boolean {
  if (accept === undefined || accept === '') return false;
  let json = -1;
  let html = -1;
  for (const entry of accept.split(',')) {
    const [type = '', ...parameters] = entry.split(';').map((part) => part.trim().toLowerCase());
    const qParameter = parameters.find((parameter) => parameter.startsWith('q='));
    const q = qParameter === undefined ? 1 : Number(qParameter.slice(2));
    if (!Number.isFinite(q)) continue;
    if (type === SIMPLE_JSON) json = Math.max(json, q);
    else if (type === SIMPLE_HTML || type === 'text/html' || type === '*/*') html = Math.max(html, q);
  }
  return json >= 0 && json >= html;
}
