import { blake2b } from '@noble/hashes/blake2.js';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Writes a pure-Python wheel and an sdist (argv: out dir, version, project name, and optionally
 * the name/version the wheel's METADATA claims) and prints their paths. The sdist carries an
 * in-tree PEP 517 backend, so pip prepares its metadata without setuptools or the network.
 */
const BUILD_DISTRIBUTIONS = String.raw`
import base64, hashlib, io, sys, tarfile, zipfile
out, version, project = sys.argv[1], sys.argv[2], sys.argv[3]
meta_name = sys.argv[4] if len(sys.argv) > 4 else project
meta_version = sys.argv[5] if len(sys.argv) > 5 else version
requires = ''.join(f'Requires-Dist: {r}\n' for r in sys.argv[6].split(',') if r) if len(sys.argv) > 6 else ''
module = project.replace('-', '_')
dist_info = f'{module}-{version}.dist-info'
metadata = f'Metadata-Version: 2.1\nName: {meta_name}\nVersion: {meta_version}\nSummary: a demo\nRequires-Python: >=3.8\n{requires}\n'.encode()
files = {
    f'{module}/__init__.py': f'GREETING = "hello from {project} {version}"\n'.encode(),
    f'{dist_info}/METADATA': metadata,
    f'{dist_info}/WHEEL': b'Wheel-Version: 1.0\nGenerator: strata-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n\n',
}
record = ''.join(f'{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()},{len(data)}\n' for path, data in files.items())
files[f'{dist_info}/RECORD'] = (record + f'{dist_info}/RECORD,,\n').encode()
wheel = f'{out}/{module}-{version}-py3-none-any.whl'
with zipfile.ZipFile(wheel, 'w', zipfile.ZIP_DEFLATED) as archive:
    for path, data in files.items():
        archive.writestr(path, data)
root = f'{module}-{version}'
sdist_files = {
    f'{root}/PKG-INFO': metadata,
    f'{root}/pyproject.toml': b'[build-system]\nrequires = []\nbuild-backend = "demo_backend"\nbackend-path = ["."]\n',
    f'{root}/demo_backend.py': (
        'import os, shutil\n'
        'def get_requires_for_build_wheel(config_settings=None):\n    return []\n'
        'def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):\n'
        f'    info = "{module}-{version}.dist-info"\n'
        '    os.makedirs(os.path.join(metadata_directory, info))\n'
        '    shutil.copy("PKG-INFO", os.path.join(metadata_directory, info, "METADATA"))\n'
        '    return info\n'
        'def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n    raise NotImplementedError\n'
    ).encode(),
    f'{root}/{module}/__init__.py': f'GREETING = "hello from the {project} sdist {version}"\n'.encode(),
}
sdist = f'{out}/{root}.tar.gz'
with tarfile.open(sdist, 'w:gz') as archive:
    for path, data in sdist_files.items():
        info = tarfile.TarInfo(path)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
print(wheel)
print(sdist)
`;

/** Why the pip tests cannot run here, or undefined when python3 with pip is present. */
export async function pipMissing(): Promise<string | undefined> {
  try {
    await run('python3', ['-m', 'pip', '--version'], { timeout: 30_000 });
    return undefined;
  } catch {
    return 'python3 with pip is not installed';
  }
}

/**
 * Builds a wheel and an sdist of `project` at `version` into `out`; `metadata` overrides what
 * their METADATA / PKG-INFO claims, `requiresDist` lists their dependencies.
 */
export async function buildDistributions(
  out: string,
  project: string,
  version: string,
  metadata?: { name: string; version: string },
  requiresDist: readonly string[] = [],
): Promise<{ wheel: string; sdist: string }> {
  const script = join(out, 'build-distributions.py');
  await writeFile(script, BUILD_DISTRIBUTIONS);
  const claimed = metadata ?? { name: project, version };
  const args = [script, out, version, project, ...(metadata === undefined && requiresDist.length === 0 ? [] : [claimed.name, claimed.version, requiresDist.join(',')])];
  const [wheel = '', sdist = ''] = (await run('python3', args, { timeout: 60_000 })).stdout.trim().split('\n');
  return { wheel, sdist };
}

const BUILD_ARCHIVE = String.raw`
import io, json, sys, tarfile, zipfile
path, files = sys.argv[1], json.loads(sys.argv[2])
if path.endswith('.zip'):
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
else:
    # PAX format: a name longer than 100 bytes goes into a pax header, as setuptools' tarballs do.
    with tarfile.open(path, 'w:gz', format=tarfile.PAX_FORMAT) as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
`;

/** Writes an archive (`.tar.gz` by Python's tarfile, `.zip` by zipfile) holding `files` (name → text); returns its bytes. */
export async function buildArchive(path: string, files: Record<string, string>): Promise<Buffer> {
  const script = `${path}.py`;
  await writeFile(script, BUILD_ARCHIVE);
  await run('python3', [script, path, JSON.stringify(files)], { timeout: 60_000 });
  return readFile(path);
}

/** The form fields twine sends for a distribution, in its order (metadata, then digests, then the file). */
export function twineForm(file: string, bytes: Buffer, fields: Record<string, string>): FormData {
  const form = new FormData();
  const all: Record<string, string> = {
    ':action': 'file_upload',
    protocol_version: '1',
    metadata_version: '2.1',
    summary: 'a demo',
    requires_python: '>=3.8',
    comment: '',
    md5_digest: createHash('md5').update(bytes).digest('hex'),
    sha256_digest: createHash('sha256').update(bytes).digest('hex'),
    blake2_256_digest: Buffer.from(blake2b(bytes, { dkLen: 32 })).toString('hex'),
    ...fields,
  };
  for (const [key, value] of Object.entries(all)) form.append(key, value);
  form.append('content', new Blob([bytes], { type: 'application/octet-stream' }), basename(file));
  return form;
}

/** pip with no configuration of the machine's (PIP_CONFIG_FILE=/dev/null), against one index URL. */
export function pip(home: string, index: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: home, PIP_CONFIG_FILE: '/dev/null', PIP_DISABLE_PIP_VERSION_CHECK: '1', PIP_NO_INPUT: '1' };
  return run('python3', ['-m', 'pip', ...args, '--index-url', index, '--no-cache-dir'], { env, timeout: 120_000 });
}
