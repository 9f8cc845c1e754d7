/** Content-Type by file extension, for the types package clients and browsers care about. */
const MIME_TYPES: Readonly<Record<string, string>> = {
  jar: 'application/java-archive',
  war: 'application/java-archive',
  ear: 'application/java-archive',
  pom: 'application/x-maven-pom+xml',
  xml: 'application/xml',
  json: 'application/json',
  txt: 'text/plain',
  md: 'text/markdown',
  html: 'text/html',
  htm: 'text/html',
  css: 'text/css',
  js: 'application/javascript',
  sha1: 'text/plain',
  sha256: 'text/plain',
  sha512: 'text/plain',
  md5: 'text/plain',
  asc: 'text/plain',
  properties: 'text/plain',
  yaml: 'application/x-yaml',
  yml: 'application/x-yaml',
  tgz: 'application/x-gzip',
  gz: 'application/x-gzip',
  tar: 'application/x-tar',
  zip: 'application/zip',
  whl: 'application/zip',
  nupkg: 'application/zip',
  bz2: 'application/x-bzip2',
  xz: 'application/x-xz',
  rpm: 'application/x-rpm',
  deb: 'application/vnd.debian.binary-package',
  pdf: 'application/pdf',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  svg: 'image/svg+xml',
};

export function mimeTypeFor(path: string): string {
  const name = path.slice(path.lastIndexOf('/') + 1).toLowerCase();
  const dot = name.lastIndexOf('.');
  if (dot < 0) return 'application/octet-stream';
  return MIME_TYPES[name.slice(dot + 1)] ?? 'application/octet-stream';
}
