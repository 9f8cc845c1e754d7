/**
 * The transaction an append batch runs in, driven by the SQL event store through a small
 * interface so that the round trips per batch depend on the backend: on PostgreSQL (`pg`)
 * `begin` travels with the batch's first statements and `commit` with its last ones, each
 * round trip one multi-statement simple query; elsewhere (PGlite, a Kysely instance of
 * unknown origin) the statements run one by one in a Kysely transaction.
 */
import { CompiledQuery, Kysely, PostgresDialect, type PostgresPool } from 'kysely';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { StrataError } from '@strata/core';
import type { StoreDatabase } from './schema.ts';

export type StatementRows = readonly Record<string, unknown>[];

/** The open transaction of one append batch. */
export interface AppendSession {
  /**
   * Runs `statements` in order and returns each one's rows. With `commit`, the transaction
   * commits right after them (nothing may be sent after that). On PostgreSQL all of them,
   * with the `begin` before the first send and the `commit`, travel in one round trip.
   */
  send(statements: readonly CompiledQuery[], options?: AppendSendOptions): Promise<StatementRows[]>;
  /**
   * The open transaction as a Kysely instance, for projections that apply themselves. Only
   * after the first `send` (on PostgreSQL the transaction begins with it).
   */
  readonly db: Kysely<StoreDatabase>;
  /**
   * Where the transaction can take a COPY … FROM (PostgreSQL: on the transaction's own
   * client, through pg-copy-streams; PGlite: from a blob): runs `statement(source)` — source
   * `stdin` or `'/dev/blob'` — with `data` (the whole COPY input, e.g. a binary COPY's
   * header, rows and trailer) in the open transaction. Only after the first `send`. Absent:
   * the store inserts with statements only.
   */
  readonly copyIn?: (statement: (source: string) => string, data: readonly Uint8Array[]) => Promise<void>;
}

export interface AppendSendOptions {
  readonly commit?: boolean;
  /**
   * The first `keyReads` statements read rows by their keys only (stream locks, stored ids,
   * the projections' loads, the guards, the guess's check): on PostgreSQL they are planned
   * without sequential scans (see sendParts).
   */
  readonly keyReads?: number;
}

/** Runs append batches in transactions; see AppendSession. */
export interface AppendTransactions {
  /**
   * Runs `work` in one transaction: committed when `work` sent `commit` or returns,
   * rolled back when it throws before committing.
   */
  run<T>(work: (session: AppendSession) => Promise<T>): Promise<T>;
}

/** The slice of PGlite a COPY from a blob needs (open-pglite.ts). */
export interface PgliteCopyIn {
  query(query: string, params?: unknown[], options?: { blob?: Blob }): Promise<unknown>;
}

/**
 * Statement by statement in a Kysely transaction (PGlite; any Kysely instance). With `pglite`
 * (the PGlite instance under `db`), sessions offer `copyIn` from a blob: PGlite has one
 * session, so a query sent straight to it lands inside the transaction Kysely holds.
 */
export function kyselyAppendTransactions(db: Kysely<StoreDatabase>, options: { readonly pglite?: PgliteCopyIn } = {}): AppendTransactions {
  const pglite = options.pglite;
  return {
    run: (work) =>
      db.transaction().execute((tx) =>
        work({
          db: tx,
          async send(statements) {
            const results: StatementRows[] = [];
            for (const statement of statements) results.push((await tx.executeQuery(statement)).rows as StatementRows);
            return results;
          },
          ...(pglite === undefined
            ? {}
            : {
                async copyIn(statement: (source: string) => string, data: readonly Uint8Array[]) {
                  await pglite.query(statement(`'/dev/blob'`), [], { blob: new Blob(data as Uint8Array<ArrayBuffer>[]) });
                },
              }),
        }),
      ),
  };
}

export interface PgAppendTransactionsOptions {
  /**
   * Statements sent this many times are prepared on each connection (PostgreSQL `PREPARE`,
   * outside any transaction, once per connection) and from then on sent as `EXECUTE` with
   * the same literals: PostgreSQL no longer parses, analyses and plans them per batch.
   * 0: never. Default 3.
   */
  readonly prepareAfter?: number;
  /** Told the start and end of every round trip (diagnostics: the server's STRATA_DEPLOY_TRACE). */
  readonly onSend?: AppendSendHook;
}

/** One round trip of a PostgreSQL append transaction: its statements, whether it commits, when it started and ended (performance.now()), whether it failed. */
export type AppendSendHook = (send: { readonly statements: number; readonly commit: boolean; readonly started: number; readonly ended: number; readonly failed?: true }) => void;

/** Most statements prepared per pool (each connection prepares those it sends). */
const preparedStatementsMax = 32;
/** Distinct statement texts counted before the count starts over (one-off statements). */
const countedStatementsMax = 512;

/**
 * Which append statements run prepared, shared by the sessions of one database (a `pg` pool's
 * connections, or PGlite's one session): a statement text sent `prepareAfter` times gets a
 * name, each session prepares it (PostgreSQL `PREPARE`, outside any transaction) after the
 * transaction that sent it inlined, and from then on sends `EXECUTE name(…)` with the same
 * literals — PostgreSQL no longer parses, analyses and plans it per batch.
 */
export class PreparedAppendStatements {
  readonly #prepareAfter: number;
  /** How often each statement text was sent (until it gets a name). */
  readonly #counts = new Map<string, number>();
  /** Statement text → its prepared statement's name; undefined value: it cannot be prepared. */
  readonly #names = new Map<string, string | undefined>();

  constructor(prepareAfter: number) {
    this.#prepareAfter = prepareAfter;
  }

  /**
   * The text to send for `statement` in a session where the names in `prepared` exist: its
   * `EXECUTE` when prepared there, else the statement with its parameters inlined (a hot one
   * is then added to `toPrepare`, text → name, for `prepare` after the transaction).
   */
  text(statement: CompiledQuery, prepared: ReadonlySet<string> | undefined, toPrepare: Map<string, string>): string {
    const name = this.#nameOf(statement.sql);
    if (name === undefined) return inlineParameters(statement);
    if (prepared?.has(name) === true) return executeText(name, statement);
    toPrepare.set(statement.sql, name);
    return inlineParameters(statement);
  }

  /**
   * Prepares `wanted` (from `text`) with `run`, between transactions, adding each name to
   * `prepared`; one at a time, so that a statement PostgreSQL will not prepare (a parameter
   * whose type it cannot infer) fails alone: it is then inlined for good.
   */
  async prepare(run: (text: string) => Promise<unknown>, prepared: Set<string>, wanted: ReadonlyMap<string, string>): Promise<void> {
    for (const [text, name] of wanted) {
      if (prepared.has(name)) continue;
      try {
        await run(`prepare ${name} as ${text}`);
        prepared.add(name);
      } catch {
        this.#names.set(text, undefined);
      }
    }
  }

  /** A statement text's name once it is hot (undefined while it is not, or cannot be). */
  #nameOf(text: string): string | undefined {
    if (this.#prepareAfter === 0) return undefined;
    if (this.#names.has(text)) return this.#names.get(text);
    const count = (this.#counts.get(text) ?? 0) + 1;
    if (count < this.#prepareAfter || this.#names.size >= preparedStatementsMax) {
      if (this.#counts.size >= countedStatementsMax) this.#counts.clear();
      this.#counts.set(text, count);
      return undefined;
    }
    this.#counts.delete(text);
    const name = `strata_append_${this.#names.size + 1}`;
    this.#names.set(text, name);
    return name;
  }
}

/**
 * On a `pg` pool: each `send` is one simple query holding every statement (parameters
 * inlined as literals, see inlineParameters), with `begin` in front of the first and
 * `commit` after the last — an append batch is two round trips instead of five. The hot
 * statements (the same text in every batch: arrays travel as one parameter each) are
 * prepared per connection and executed by name (see PgAppendTransactionsOptions).
 */
export function pgAppendTransactions(pool: pg.Pool, options: PgAppendTransactionsOptions = {}): AppendTransactions {
  const statements = new PreparedAppendStatements(options.prepareAfter ?? 3);
  const onSend = options.onSend;
  const bound = new WeakMap<pg.PoolClient, Kysely<StoreDatabase>>();
  const kyselyOf = (client: pg.PoolClient): Kysely<StoreDatabase> => {
    let db = bound.get(client);
    if (db === undefined) {
      // A pool of this one client, never released nor ended by Kysely: the transaction is ours.
      const handle = { query: client.query.bind(client), release: () => undefined };
      const single = { connect: async () => handle, end: async () => undefined } as unknown as PostgresPool;
      db = new Kysely<StoreDatabase>({ dialect: new PostgresDialect({ pool: single }) });
      bound.set(client, db);
    }
    return db;
  };
  /** The names prepared on each connection. */
  const preparedOn = new WeakMap<pg.PoolClient, Set<string>>();
  return {
    async run(work) {
      const client = await pool.connect();
      let state = 'idle' as 'idle' | 'open' | 'committed';
      const prepared = preparedOn.get(client);
      /** Hot statements sent inlined in this transaction, to prepare after it. */
      const toPrepare = new Map<string, string>();
      const session: AppendSession = {
        get db() {
          if (state !== 'open') throw new StrataError('STRATA_ERR_INVARIANT', 'the append transaction is not open');
          return kyselyOf(client);
        },
        async send(sent, options = {}) {
          if (state === 'committed') throw new StrataError('STRATA_ERR_INVARIANT', 'the append transaction has committed');
          const texts = sent.map((statement) => statements.text(statement, prepared, toPrepare));
          const began = state === 'idle';
          const { parts, results: positions } = sendParts(texts, began, options);
          state = 'open';
          const traceSend = onSend;
          const started = traceSend === undefined ? 0 : performance.now();
          let result: pg.QueryResult | pg.QueryResult[];
          try {
            result = (await client.query(parts.join(';\n'))) as unknown as pg.QueryResult | pg.QueryResult[];
          } catch (error) {
            traceSend?.({ statements: texts.length, commit: options.commit === true, started, ended: performance.now(), failed: true });
            throw error;
          }
          traceSend?.({ statements: texts.length, commit: options.commit === true, started, ended: performance.now() });
          const results = Array.isArray(result) ? result : [result];
          if (results.length !== parts.length) {
            throw new StrataError('STRATA_ERR_INVARIANT', `expected ${parts.length} results from the append statements, got ${results.length}`);
          }
          if (options.commit === true) {
            // A COMMIT of a transaction that failed answers ROLLBACK, without an error.
            if (results.at(-1)!.command !== 'COMMIT') throw new StrataError('STRATA_ERR_STORE_UNAVAILABLE', 'the append transaction did not commit');
            state = 'committed';
          }
          return positions.map((position) => results[position]!.rows);
        },
        async copyIn(statement, data) {
          if (state !== 'open') throw new StrataError('STRATA_ERR_INVARIANT', 'a COPY needs the append transaction open');
          const stream = client.query(copyFrom(statement('stdin')));
          await new Promise<void>((resolve, reject) => {
            stream.on('finish', resolve);
            stream.on('error', reject);
            for (const chunk of data) stream.write(chunk);
            stream.end();
          });
        },
      };
      try {
        const value = await work(session);
        if (state === 'open') await client.query('commit');
        state = 'committed';
        if (toPrepare.size > 0) {
          let names = preparedOn.get(client);
          if (names === undefined) preparedOn.set(client, (names = new Set()));
          await statements.prepare((text) => client.query(text), names, toPrepare).catch(() => undefined);
        }
        client.release();
        return value;
      } catch (error) {
        if (state !== 'open') {
          client.release();
          throw error;
        }
        try {
          await client.query('rollback');
          client.release();
        } catch (rollbackError) {
          // The connection is in doubt: drop it rather than hand it to the next batch.
          client.release(rollbackError as Error);
        }
        throw error;
      }
    },
  };
}

/**
 * Around the statements that read by key (AppendSendOptions.keyReads), sequential scans are
 * off for their planning. Their generic plans (PreparedAppendStatements) are made once and
 * kept until the tables' statistics change: a table analysed while empty or small — autovacuum
 * analyses `folder_tombstones` after its first 50 rows, a site's `vacuum analyze` right after
 * installing — has every probe planned as a sequential scan of the whole table, each batch
 * reading it once per covering prefix (~80 times for 16 deploys) until the next analyse.
 * Each probe reads one key: an index scan is the right plan at any size. `to default` (the
 * session's own setting) again for the statements after them, which may scan.
 */
const KEY_READS_BEGIN = 'set local enable_seqscan = off';
const KEY_READS_END = 'set local enable_seqscan to default';

/**
 * The statements of one simple query (the `begin` of a transaction's first send, the key
 * reads' settings, the `commit`), and where each of `texts`' results is among theirs.
 */
export function sendParts(texts: readonly string[], begin: boolean, options: AppendSendOptions): { parts: string[]; results: number[] } {
  const keyReads = Math.min(options.keyReads ?? 0, texts.length);
  const parts: string[] = begin ? ['begin'] : [];
  const results: number[] = [];
  if (keyReads > 0) parts.push(KEY_READS_BEGIN);
  texts.forEach((text, index) => {
    if (index === keyReads && keyReads > 0) parts.push(KEY_READS_END);
    results.push(parts.length);
    parts.push(text);
  });
  if (keyReads > 0 && keyReads === texts.length) parts.push(KEY_READS_END);
  if (options.commit === true) parts.push('commit');
  return { parts, results };
}

/** `execute name(…)` of a prepared statement, its parameters as inlineParameters writes them. */
function executeText(name: string, query: CompiledQuery): string {
  const parameters = query.parameters;
  return parameters.length === 0 ? `execute ${name}` : `execute ${name}(${parameters.map(literal).join(', ')})`;
}

const PLACEHOLDER = /\$([0-9]+)/g;

/**
 * A compiled query as plain SQL text: each `$n` replaced by its parameter as a quoted
 * literal of the very text `pg` would have sent as that parameter (pg sends parameters as
 * text of unspecified type, so an untyped literal resolves to the same type in the same
 * place). The placeholders must appear exactly once each and in order ($1, $2, …), as
 * Kysely compiles them; anything else is refused rather than guessed at.
 */
export function inlineParameters(query: CompiledQuery): string {
  const parameters = query.parameters;
  let next = 1;
  const text = query.sql.replace(PLACEHOLDER, (_match, digits: string) => {
    if (Number(digits) !== next || next > parameters.length) {
      throw new StrataError('STRATA_ERR_INVARIANT', `unexpected placeholder $${digits} in an append statement`);
    }
    return literal(parameters[next++ - 1]);
  });
  if (next !== parameters.length + 1) {
    throw new StrataError('STRATA_ERR_INVARIANT', `an append statement uses ${next - 1} of its ${parameters.length} parameters`);
  }
  return text;
}

const prepareValue = (pg as unknown as { utils: { prepareValue(value: unknown): unknown } }).utils.prepareValue;

/**
 * One parameter as an SQL literal (see inlineParameters): exactly the text `quote(prepareValue(value))`
 * gives (pg's prepareValue, as `pg` would send it), built without its intermediate strings for
 * the values an append sends (strings, numbers, bytes, flat arrays of them): every batch inlines
 * a few thousand array elements, and pg's array text, escaped element by element with two
 * regular expressions, then quoted again, was a tenth of the batch's JavaScript.
 */
export function literal(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  switch (typeof value) {
    case 'string':
      return quote(value);
    case 'number':
    case 'bigint':
    case 'boolean':
      return `'${value.toString()}'`;
  }
  if (value instanceof Uint8Array) return ` E'\\\\x${hexOf(value)}'`;
  if (Array.isArray(value)) {
    const fast = arrayLiteral(value);
    if (fast !== undefined) return fast;
  }
  const prepared = prepareValue(value);
  if (prepared === null || prepared === undefined) return 'null';
  if (typeof prepared !== 'string') throw new StrataError('STRATA_ERR_INVARIANT', `cannot inline a parameter of type ${typeof value}`);
  return quote(prepared);
}

function hexOf(bytes: Uint8Array): string {
  return (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).toString('hex');
}

/** A character that changes how an array element or a literal must be escaped. */
const SPECIAL = /[\\"'\u0000]/;

/**
 * `quote(arrayString(elements))` for a flat array of nulls, strings, numbers, bigints,
 * booleans and bytes, in one pass per element; undefined for anything else (nested arrays,
 * dates, objects), which the caller sends through pg's own conversion. Element by element
 * the same text: pg's array text is `{`, the elements joined by `,`, `}`, where null is
 * NULL, bytes are `\\x<hex>` and anything else is its text in double quotes with `\` and
 * `"` escaped by a backslash; quote() then doubles every `'` and, when the text holds a
 * backslash, every backslash (an escape string). Neither touches `{`, `,`, `}` or NULL,
 * so each element can be escaped on its own once it is known whether any holds a backslash.
 */
function arrayLiteral(elements: readonly unknown[]): string | undefined {
  const joined = joinedArrayLiteral(elements);
  if (joined !== undefined) return joined;
  let escapeString = false;
  for (const element of elements) {
    if (element === null || element === undefined) continue;
    const kind = typeof element;
    if (kind === 'string') {
      if (SPECIAL.test(element as string)) {
        if ((element as string).includes('\u0000')) throw new StrataError('STRATA_ERR_INVARIANT', 'a text value holds a NUL character');
        if ((element as string).includes('\\') || (element as string).includes('"')) escapeString = true;
      }
    } else if (element instanceof Uint8Array) {
      escapeString = true;
    } else if (kind !== 'number' && kind !== 'bigint' && kind !== 'boolean') {
      return undefined;
    }
  }
  let text = escapeString ? " E'{" : "'{";
  for (let index = 0; index < elements.length; index++) {
    if (index > 0) text += ',';
    const element = elements[index];
    if (element === null || element === undefined) text += 'NULL';
    else if (typeof element === 'string') text += SPECIAL.test(element) ? escapedElement(element, escapeString) : `"${element}"`;
    else if (element instanceof Uint8Array) text += `\\\\\\\\x${hexOf(element)}`;
    else text += `"${(element as number | bigint | boolean).toString()}"`;
  }
  return `${text}}'`;
}

/**
 * arrayLiteral's text for the arrays most statements of a batch send, built by one native
 * join instead of element by element: only bytes, or only strings without a character to
 * escape, or only numbers (or only bigints, or only booleans), no null. Undefined otherwise.
 * The same text: join() writes each number, bigint and boolean as its toString() does.
 */
function joinedArrayLiteral(elements: readonly unknown[]): string | undefined {
  const count = elements.length;
  if (count === 0) return undefined;
  const first = elements[0];
  if (first instanceof Uint8Array) {
    const hex = new Array<string>(count);
    for (let index = 0; index < count; index++) {
      const element = elements[index];
      if (!(element instanceof Uint8Array)) return undefined;
      hex[index] = hexOf(element);
    }
    return ` E'{\\\\\\\\x${hex.join(',\\\\\\\\x')}}'`;
  }
  const kind = typeof first;
  if (kind === 'string') {
    for (let index = 0; index < count; index++) {
      const element = elements[index];
      if (typeof element !== 'string' || SPECIAL.test(element)) return undefined;
    }
  } else if (kind === 'number' || kind === 'bigint' || kind === 'boolean') {
    for (let index = 0; index < count; index++) if (typeof elements[index] !== kind) return undefined;
  } else {
    return undefined;
  }
  return `'{"${elements.join('","')}"}'`;
}

/**
 * One string element of arrayLiteral: escaped for the array, then for the literal, in one pass.
 * In the array a backslash and `"` take a backslash, in the literal `'` is doubled and (in an escape
 * string) every backslash too: a backslash becomes four, `"` becomes two backslashes and
 * `"`, `'` becomes `''`. Without `escapeString` no element holds a backslash or `"`
 * (arrayLiteral checked), so only `'` changes.
 * One pass instead of four regular-expression passes: a publish's manifest is a property
 * value of ~500 characters with a hundred quotes (CPU profile, publish13).
 */
function escapedElement(element: string, escapeString: boolean): string {
  if (!escapeString) return `"${element.replaceAll("'", "''")}"`;
  let text = '"';
  let from = 0;
  for (let index = 0; index < element.length; index++) {
    const code = element.charCodeAt(index);
    if (code !== BACKSLASH && code !== DOUBLE_QUOTE && code !== SINGLE_QUOTE) continue;
    text += element.slice(from, index) + (code === BACKSLASH ? '\\\\\\\\' : code === DOUBLE_QUOTE ? '\\\\"' : "''");
    from = index + 1;
  }
  return `${text}${element.slice(from)}"`;
}

const BACKSLASH = 0x5c;
const DOUBLE_QUOTE = 0x22;
const SINGLE_QUOTE = 0x27;

/**
 * A string literal valid whatever standard_conforming_strings says: quotes doubled, and
 * with a backslash present an escape string (E'…') with backslashes doubled. A NUL would
 * end the query text early; PostgreSQL text cannot hold one anyway.
 */
function quote(text: string): string {
  if (!SPECIAL.test(text)) return `'${text}'`;
  if (text.includes('\u0000')) throw new StrataError('STRATA_ERR_INVARIANT', 'a text value holds a NUL character');
  const quoted = text.includes("'") ? text.replace(/'/g, "''") : text;
  return text.includes('\\') ? ` E'${quoted.replace(/\\/g, '\\\\')}'` : `'${quoted}'`;
}

/** The text literal() gave before its fast paths (pg's prepareValue, then quote): for tests comparing the two. */
export function preparedValueLiteral(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (value instanceof Uint8Array) return quote(`\\x${hexOf(value)}`);
  const prepared = prepareValue(value);
  if (prepared === null || prepared === undefined) return 'null';
  if (typeof prepared !== 'string') throw new StrataError('STRATA_ERR_INVARIANT', `cannot inline a parameter of type ${typeof value}`);
  return quote(prepared);
}
