import type { NewEvent } from '@strata/core';
import type { AppendOptions } from '@strata/store';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { buildUnitApp } from './support/unit-app.ts';

describe('graceful close', () => {
  it('a deploy whose client went away finishes its append before close returns (the stores close after it)', async () => {
    const { app, store } = await buildUnitApp();
    const created = await app.inject({ method: 'PUT', url: '/artifactory/api/repositories/r', payload: { rclass: 'local', packageType: 'generic' } });
    expect(created.statusCode).toBe(200);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let appendStarted!: () => void;
    const started = new Promise<void>((resolve) => (appendStarted = resolve));
    const originalAppend = store.append.bind(store);
    store.append = async (stream: string, events: readonly NewEvent[], options?: AppendOptions) => {
      appendStarted();
      await gate;
      return originalAppend(stream, events, options);
    };
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as { port: number };
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write('PUT /artifactory/r/a/file.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc');
    await started;
    socket.destroy();
    let closeReturned = false;
    const closing = app.close().then(() => (closeReturned = true));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(closeReturned).toBe(false);
    release();
    await closing;
    expect((store.streams.get('repo-r') ?? []).map((event) => event.type)).toContain('ArtifactDeployed');
  });
});
