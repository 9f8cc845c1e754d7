import { normalizeName } from './pypi-model.ts';

/**
 * Reading an upstream's simple index (pure): PEP 503 HTML and PEP 691 JSON pages, as pypi.org,
 * devpi, Artifactory or another Strata serve them, and mapping their file URLs onto paths of
 * the remote repository that proxies them.
 */

/** One file an upstream project page lists. */
export interface UpstreamIndexFile {
  readonly fileName: string;
  /** Absolute, without its fragment. */
  readonly url: string;
  readonly sha256: string | undefined;
  readonly requiresPython: string | undefined;
  readonly yanked?: string | true;
}

const SHA256 = /^[0-9a-f]{64}$/;
const NAMED_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };

/** HTML character references in attribute values and text (named: the five XML ones and nbsp). */
export function unescapeHtml(text: string): string {
  return text.replace(/&(#[0-9]{1,7}|#x[0-9a-f]{1,6}|[a-z]+);/gi, (whole, entity: string) => {
    if (entity[0] !== '#') return NAMED_ENTITIES[entity.toLowerCase()] ?? whole;
    const code = entity[1] === 'x' || entity[1] === 'X' ? Number.parseInt(entity.slice(2), 16) : Number.parseInt(entity.slice(1), 10);
    return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
  });
}

interface Anchor {
  readonly attributes: ReadonlyMap<string, string>;
  readonly text: string;
}

const ANCHOR = /<a\b([^>]*)>([\s\S]*?)<\/a\s*>/gi;
const ATTRIBUTE = /([^\s=/>"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?/g;

function anchors(html: string): Anchor[] {
  const found: Anchor[] = [];
  for (const match of html.matchAll(ANCHOR)) {
    const attributes = new Map<string, string>();
    for (const attribute of match[1]!.matchAll(ATTRIBUTE)) {
      const name = attribute[1]!.toLowerCase();
      if (!attributes.has(name)) attributes.set(name, unescapeHtml(attribute[2] ?? attribute[3] ?? attribute[4] ?? ''));
    }
    found.push({ attributes, text: unescapeHtml(match[2]!.replace(/<[^>]*>/g, '')).trim() });
  }
  return found;
}

/** The page's `<base href>`, resolved against its own URL (PEP 503 pages may set one). */
function pageBase(html: string, pageUrl: string): string {
  const base = /<base\b[^>]*\bhref\s*=\s*(?:"([^"]*)"|'([^']*)')/i.exec(html);
  if (base === null) return pageUrl;
  try {
    return new URL(unescapeHtml(base[1] ?? base[2] ?? ''), pageUrl).href;
  } catch {
    return pageUrl;
  }
}

function absolute(href: string, base: string): URL | undefined {
  try {
    const url = new URL(href, base);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : undefined;
  } catch {
    return undefined;
  }
}

function lastSegment(url: URL): string {
  const segment = url.pathname.slice(url.pathname.lastIndexOf('/') + 1);
  try {
    return decodeURIComponent(segment);
  } catch {
    return '';
  }
}

/** A PEP 503 project page: its links, file name from the URL's last segment (as pip takes it). */
export function parseProjectPageHtml(html: string, pageUrl: string): UpstreamIndexFile[] {
  const base = pageBase(html, pageUrl);
  const files: UpstreamIndexFile[] = [];
  for (const anchor of anchors(html)) {
    const href = anchor.attributes.get('href');
    if (href === undefined) continue;
    const url = absolute(href, base);
    if (url === undefined) continue;
    const fragment = url.hash.slice(1);
    url.hash = '';
    const sha256 = fragment.startsWith('sha256=') ? fragment.slice(7).toLowerCase() : undefined;
    const fileName = lastSegment(url);
    if (fileName === '') continue;
    const requiresPython = anchor.attributes.get('data-requires-python');
    const yanked = anchor.attributes.get('data-yanked');
    files.push({
      fileName,
      url: url.href,
      sha256: sha256 !== undefined && SHA256.test(sha256) ? sha256 : undefined,
      requiresPython: requiresPython === undefined || requiresPython === '' ? undefined : requiresPython,
      ...(yanked === undefined ? {} : { yanked: yanked === '' ? true : yanked }),
    });
  }
  return files;
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/** A PEP 691 project page (`application/vnd.pypi.simple.v1+json`); entries it cannot read are left out. */
export function parseProjectPageJson(text: string, pageUrl: string): UpstreamIndexFile[] {
  let page: Record<string, unknown> | undefined;
  try {
    page = record(JSON.parse(text));
  } catch {
    page = undefined;
  }
  if (page === undefined || !Array.isArray(page.files)) return [];
  const files: UpstreamIndexFile[] = [];
  for (const entry of page.files) {
    const file = record(entry);
    if (file === undefined || typeof file.filename !== 'string' || typeof file.url !== 'string') continue;
    const url = absolute(file.url, pageUrl);
    if (url === undefined) continue;
    url.hash = '';
    const sha256 = record(file.hashes)?.sha256;
    const requiresPython = file['requires-python'];
    const yanked = file.yanked;
    files.push({
      fileName: file.filename,
      url: url.href,
      sha256: typeof sha256 === 'string' && SHA256.test(sha256.toLowerCase()) ? sha256.toLowerCase() : undefined,
      requiresPython: typeof requiresPython === 'string' && requiresPython !== '' ? requiresPython : undefined,
      ...(yanked === true ? { yanked: true as const } : typeof yanked === 'string' && yanked !== '' ? { yanked } : {}),
    });
  }
  return files;
}

/** The normalised project names of a PEP 503 root page (link texts). */
export function parseProjectListHtml(html: string): string[] {
  return anchors(html)
    .map((anchor) => normalizeName(anchor.text))
    .filter((name) => name !== '');
}

/** The normalised project names of a PEP 691 root page. */
export function parseProjectListJson(text: string): string[] {
  let page: Record<string, unknown> | undefined;
  try {
    page = record(JSON.parse(text));
  } catch {
    page = undefined;
  }
  if (page === undefined || !Array.isArray(page.projects)) return [];
  return page.projects.flatMap((entry) => {
    const name = record(entry)?.name;
    return typeof name === 'string' && name !== '' ? [normalizeName(name)] : [];
  });
}

/**
 * The path of `fileUrl` in the remote repository whose url is `filesBase`: the part of its
 * path below the base's, segments decoded. Undefined for a URL elsewhere (another host, another
 * folder, a query string) and for segments that would be path tricks.
 */
export function pathUnderBase(fileUrl: string, filesBase: string): string | undefined {
  let url: URL;
  let base: URL;
  try {
    url = new URL(fileUrl);
    base = new URL(filesBase.endsWith('/') ? filesBase : `${filesBase}/`);
  } catch {
    return undefined;
  }
  if (url.origin !== base.origin || url.search !== '' || url.username !== '' || !url.pathname.startsWith(base.pathname)) return undefined;
  const rest = url.pathname.slice(base.pathname.length);
  if (rest === '') return undefined;
  const segments: string[] = [];
  for (const raw of rest.split('/')) {
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      return undefined;
    }
    if (segment === '' || segment === '.' || segment === '..' || /[/\\\0]/.test(segment)) return undefined;
    segments.push(segment);
  }
  return segments.join('/');
}
