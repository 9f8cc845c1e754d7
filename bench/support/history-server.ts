/**
 * The history bench's route in a server process of its own, as a deployed server runs it:
 * `node --import tsx bench/support/history-server.ts <checkout root> <schema>` opens the
 * bench's schema (DATABASE_URL) with the checkout's own store code, builds the checkout's app
 * (history-app.ts), and prints `listening <port>`; SIGTERM closes it. The bench (line (e))
 * starts it with the shipped launcher's malloc setting, and fetches from it by curl.
 */
import { checkoutAudit, listenHistoryApp, openCheckoutDatabase } from './history-app.ts';

const [root, schema] = process.argv.slice(2);
if (root === undefined || schema === undefined) throw new Error('usage: history-server.ts <checkout root> <schema>');
// Its pool keeps idle connections, as `strata serve`'s does (open-event-store.ts).
const database = await openCheckoutDatabase(root, schema, true);
const app = await listenHistoryApp(root, database, await checkoutAudit(root, database));
const address = app.server.address();
process.stdout.write(`listening ${typeof address === 'object' && address !== null ? address.port : 0}\n`);
// Started by the bench with an IPC channel: when the bench is gone (a timeout killed it),
// so is this server.
process.once('disconnect', () => process.exit(0));
process.once('SIGTERM', () => {
  void app
    .close()
    .then(() => database.close())
    .finally(() => process.exit(0));
});
