import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { readSdistPkgInfo } from '../src/formats/pypi/sdist-metadata.ts';
import { MemoryBlobStore } from './support/memory-blob-store.ts';

/** One tar header block (ustar, or GNU/pax special entries by `type`), with its checksum. */
function header(name: string, size: number, type = '0', prefix = ''): Buffer {
  const block = Buffer.alloc(512);
  block.write(name.slice(0, 100), 0, 'utf8');
  block.write('0000644\0', 100);
  block.write('0000000\0', 108);
  block.write('0000000\0', 116);
  block.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  block.write('00000000000\0', 136);
  block.write(type, 156);
  block.write('ustar\0', 257);
  block.write('00', 263);
  block.write(prefix, 345);
  block.fill(' ', 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return block;
}

function entry(name: string, data: string, type = '0', prefix = ''): Buffer {
  const bytes = Buffer.from(data);
  return Buffer.concat([header(name, bytes.length, type, prefix), bytes, Buffer.alloc((512 - (bytes.length % 512)) % 512)]);
}

function paxPath(path: string): string {
  // `{length} path={path}\n`, where the length counts the whole record including its own digits.
  const body = ` path=${path}\n`;
  let length = body.length + 1;
  while (String(length).length + body.length !== length) length++;
  return `${length}${body}`;
}

async function pkgInfo(entries: Buffer[]): Promise<string> {
  const blobs = new MemoryBlobStore();
  const tarball = gzipSync(Buffer.concat([...entries, Buffer.alloc(1024)]));
  const lease = await blobs.put(Readable.from([tarball]));
  return (await readSdistPkgInfo(blobs, lease.sha256, lease.size, 'demo-1.0.tar.gz')).toString('utf8');
}

const PKG_INFO = 'Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n\n';

describe("an sdist's PKG-INFO read from its .tar.gz", () => {
  it('finds the top folder PKG-INFO after other entries, skipping their data', async () => {
    expect(await pkgInfo([entry('demo-1.0/setup.py', 'x'.repeat(1500)), entry('demo-1.0/PKG-INFO', PKG_INFO)])).toBe(PKG_INFO);
  });

  it('understands ustar prefixes, GNU long names and pax path records', async () => {
    expect(await pkgInfo([entry('PKG-INFO', PKG_INFO, '0', 'demo-1.0')])).toBe(PKG_INFO);
    expect(await pkgInfo([entry('././@LongLink', 'demo-1.0/PKG-INFO\0', 'L'), entry('truncated-name', PKG_INFO)])).toBe(PKG_INFO);
    expect(await pkgInfo([entry('PaxHeaders/x', paxPath('demo-1.0/PKG-INFO'), 'x'), entry('truncated-name', PKG_INFO)])).toBe(PKG_INFO);
    // A long name applies to the next entry only.
    expect(await pkgInfo([entry('././@LongLink', `demo-1.0/${'a'.repeat(150)}\0`, 'L'), entry('short', 'x'), entry('demo-1.0/PKG-INFO', PKG_INFO)])).toBe(PKG_INFO);
  });

  it('refuses an archive without a top-level PKG-INFO, or one that ends inside an entry, with a typed error', async () => {
    await expect(pkgInfo([entry('demo-1.0/src/demo.egg-info/PKG-INFO', PKG_INFO)])).rejects.toMatchObject({ code: 'STRATA_ERR_PACKAGE_INVALID', message: expect.stringMatching(/has no PKG-INFO/) });
    await expect(pkgInfo([entry('PKG-INFO', PKG_INFO)])).rejects.toMatchObject({ code: 'STRATA_ERR_PACKAGE_INVALID' });
    const blobs = new MemoryBlobStore();
    const cut = gzipSync(Buffer.concat([header('demo-1.0/PKG-INFO', 4096)]));
    const lease = await blobs.put(Readable.from([cut]));
    await expect(readSdistPkgInfo(blobs, lease.sha256, lease.size, 'demo-1.0.tar.gz')).rejects.toMatchObject({ code: 'STRATA_ERR_PACKAGE_INVALID', message: expect.stringMatching(/not a readable/) });
  });
});
