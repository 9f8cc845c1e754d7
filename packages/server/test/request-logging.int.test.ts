import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bufferedLogDestination } from '../src/request-logging.ts';
import { buildUnitApp } from './support/unit-app.ts';
import type { UnitApp } from './support/unit-app.ts';

interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly reqId?: string;
  readonly method?: string;
  readonly url?: string;
  readonly statusCode?: number;
  readonly responseTimeMs?: number;
  readonly err?: { message: string };
}

describe('request logs', () => {
  let t: UnitApp;
  const lines: LogLine[] = [];
  beforeAll(async () => {
    t = await buildUnitApp({}, { level: 'info', stream: { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) } });
    t.app.get('/test/failing', async () => {
      throw new Error('broken on purpose');
    });
  });
  afterAll(async () => {
    await t.app.close();
  });
  const of = (reqId: string) => lines.filter((line) => line.reqId === reqId);

  it('writes one completion line per request, with the request id the client sent', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/artifactory/api/system/ping', headers: { 'x-request-id': 'client-id-1' } });
    expect(response.statusCode).toBe(200);
    expect(of('client-id-1')).toEqual([
      expect.objectContaining({ level: 30, msg: 'request completed', method: 'GET', url: '/artifactory/api/system/ping', statusCode: 200, responseTimeMs: expect.any(Number) }),
    ]);
    expect(lines.some((line) => line.msg === 'incoming request')).toBe(false);
  });

  it('gives every other request an id of its own', async () => {
    const before = lines.length;
    await t.app.inject({ method: 'GET', url: '/artifactory/api/system/ping' });
    await t.app.inject({ method: 'GET', url: '/nowhere' });
    const written = lines.slice(before);
    expect(written.map((line) => [line.msg, line.statusCode])).toEqual([
      ['request completed', 200],
      ['request completed', 404],
    ]);
    const [first, second] = written.map((line) => line.reqId);
    expect(first).toMatch(/.+/);
    expect(second).toMatch(/.+/);
    expect(first).not.toBe(second);
  });

  it('logs a failing request\'s error and its completion under the same id', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/test/failing', headers: { 'x-request-id': 'client-id-2' } });
    expect(response.statusCode).toBe(500);
    expect(of('client-id-2')).toEqual([
      expect.objectContaining({ level: 50, msg: 'request failed', err: expect.objectContaining({ message: 'broken on purpose' }) }),
      expect.objectContaining({ level: 30, msg: 'request completed', statusCode: 500 }),
    ]);
  });
});

describe('bufferedLogDestination', () => {
  let directory: string;
  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'strata-log-'));
  });
  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('writes lines in blocks of about 4 KiB, and what is left at close', async () => {
    const path = join(directory, 'log');
    const file = await open(path, 'w');
    try {
      const destination = bufferedLogDestination({ fd: file.fd });
      const line = `${JSON.stringify({ msg: 'x'.repeat(90) })}\n`;
      destination.write(line);
      expect(await readFile(path, 'utf8')).toBe('');
      for (let index = 1; index < 50; index++) destination.write(line);
      const written = await readFile(path, 'utf8');
      expect(written.length).toBeGreaterThanOrEqual(4096);
      expect(written.length % line.length).toBe(0);
      destination.close();
      expect(await readFile(path, 'utf8')).toBe(line.repeat(50));
      // After close every line is written at once.
      destination.write(line);
      expect(await readFile(path, 'utf8')).toBe(line.repeat(51));
    } finally {
      await file.close();
    }
  });

  it('writes every line at once on a terminal', async () => {
    const path = join(directory, 'tty');
    const file = await open(path, 'w');
    try {
      const destination = bufferedLogDestination({ fd: file.fd, isTTY: true });
      destination.write('{"msg":"one"}\n');
      expect(await readFile(path, 'utf8')).toBe('{"msg":"one"}\n');
      destination.close();
    } finally {
      await file.close();
    }
  });
});
