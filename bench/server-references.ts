/**
 * The fastify references of the server HTTP benchmark, in a process of their own (as the
 * server is): `node --import tsx bench/server-references.ts <port> <dir>`. Routes:
 * `/hello` (hello-world), `/stream/<name>` (a naive route piping fs.createReadStream of
 * `<dir>/<name>`). No logger, no auth: the cheapest a fastify route gets.
 */
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import Fastify from 'fastify';

const [portText, directory] = process.argv.slice(2);
if (portText === undefined || directory === undefined) throw new Error('usage: server-references.ts <port> <dir>');

const app = Fastify({ logger: false });
app.get('/hello', async () => ({ hello: 'world' }));
app.get<{ Params: { name: string } }>('/stream/:name', (request, reply) => {
  if (!/^[\w.-]+$/.test(request.params.name)) return reply.code(400).send();
  return reply.type('application/octet-stream').send(createReadStream(join(directory, request.params.name)));
});
await app.listen({ host: '127.0.0.1', port: Number(portText) });
process.send?.('ready');
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
