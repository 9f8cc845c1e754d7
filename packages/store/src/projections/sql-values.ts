import { sql, type RawBuilder } from 'kysely';
import { Parameter, SqlText } from '../sql-text.ts';
import { StrataError, type EventStamp, type EventVersion } from '@strata/core';

/** int8 arrives as a string (pg), a number (PGlite) or a bigint: every wall fits a double. */
export function toNumber(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint' || typeof value === 'string') return Number(value);
  throw new TypeError(`expected an integer column, got ${typeof value}`);
}

export function toNullableNumber(value: unknown): number | null {
  return value === null || value === undefined ? null : toNumber(value);
}

export function stampFromColumns(wall: unknown, logical: unknown, origin: unknown): EventStamp | null {
  if (wall === null || wall === undefined) return null;
  return { hlc: { wall: toNumber(wall), logical: toNumber(logical) }, origin: String(origin) };
}

export function versionFromColumns(wall: unknown, logical: unknown, origin: unknown, id: unknown): EventVersion | null {
  const stamp = stampFromColumns(wall, logical, origin);
  return stamp === null ? null : { ...stamp, id: String(id) };
}

/** Column name and PostgreSQL element type of one unnest() array. */
export type UnnestColumn = readonly [name: string, type: 'text' | 'int8' | 'int4' | 'bool' | 'jsonb'];

/**
 * Rows as one array parameter per column, expanded by unnest(): a multi-row write costs one
 * statement and a fixed number of parameters however many rows it carries. jsonb columns
 * travel as text and are cast per row (unnest flattens nested arrays).
 */
export function unnestRows(columns: readonly UnnestColumn[], rows: readonly (readonly unknown[])[]): RawBuilder<unknown> {
  const { selected, aliases, casts } = columnFragments(columns);
  const args = columns.map((_, index) => {
    const array = rows.map((row) => row[index] ?? null);
    return sql`${array}${casts[index]!}`;
  });
  return sql`select ${selected} from unnest(${sql.join(args)}) as u(${aliases})`;
}

/**
 * unnestRows as an SqlText (sql-text.ts: no Kysely nodes; the append's hot path), the same
 * rows. Without a jsonb column the same text: `select "u"."a", "u"."b" from unnest($1::text[],
 * $2::int8[]) as u("a", "b")`. A jsonb column whose values are all strings (each one JSON
 * text, as JSON.stringify writes it) travels as one jsonb array instead of a text[] cast per
 * row, the arrays zipped by ROWS FROM as unnest() zips its arguments: `select "u"."a",
 * "u"."v" from rows from (unnest($1::text[]), jsonb_array_elements($2::jsonb)) as u("a", "v")`.
 * The array's text needs no element escaping and PostgreSQL parses it once as jsonb; as a
 * text[] element each value (a publish's manifest: ~550 characters, a hundred quotes) was
 * escaped for the array literal and then unescaped and parsed again per row. A jsonb column
 * with a null (or any other value) travels as text[], as before.
 */
export function unnestRowsText(columns: readonly UnnestColumn[], rows: readonly (readonly unknown[])[]): SqlText {
  const { texts } = columnFragments(columns);
  const arrays = columns.map(() => [] as unknown[]);
  for (const row of rows) for (let index = 0; index < columns.length; index++) arrays[index]!.push(row[index] ?? null);
  const jsonArrays = texts.jsonb.length > 0 && rows.length > 0 && texts.jsonb.every((index) => arrays[index]!.every((value) => typeof value === 'string'));
  const chunks: SqlText['chunks'][number][] = [jsonArrays ? `select ${texts.rowsFrom.selected} from rows from (` : `select ${texts.selected} from unnest(`];
  for (let index = 0; index < columns.length; index++) {
    const separator = index + 1 < columns.length ? ', ' : '';
    if (!jsonArrays) chunks.push(new Parameter(arrays[index]), `${texts.casts[index]!}${separator}`);
    else if (columns[index]![1] === 'jsonb') chunks.push('jsonb_array_elements(', new Parameter(`[${(arrays[index] as string[]).join(',')}]`), `::jsonb)${separator}`);
    else chunks.push('unnest(', new Parameter(arrays[index]), `${texts.casts[index]!})${separator}`);
  }
  chunks.push(`) as u(${texts.aliases})`);
  return new SqlText(chunks);
}

/** columnList as text. */
export function columnListText(columns: readonly UnnestColumn[]): string {
  return columnFragments(columns).texts.aliases;
}

/** excludedAssignments as text. */
export function excludedAssignmentsText(columns: readonly UnnestColumn[], key: readonly string[]): string {
  return excludedAssignmentsOf(columns, key).text;
}

export function columnList(columns: readonly UnnestColumn[]): RawBuilder<unknown> {
  return columnFragments(columns).aliases;
}

/** `name = excluded.name` for every column not in the conflict key. */
export function excludedAssignments(columns: readonly UnnestColumn[], key: readonly string[]): RawBuilder<unknown> {
  return excludedAssignmentsOf(columns, key).raw;
}

function excludedAssignmentsOf(columns: readonly UnnestColumn[], key: readonly string[]): { readonly text: string; readonly raw: RawBuilder<unknown> } {
  const fragments = columnFragments(columns);
  const joinedKey = key.join('\u0000');
  let assignments = fragments.excluded.get(joinedKey);
  if (assignments === undefined) {
    const text = columns
      .filter(([name]) => !key.includes(name))
      .map(([name]) => `${identifier(name)} = excluded.${identifier(name)}`)
      .join(', ');
    assignments = { text, raw: sql.raw(text) };
    fragments.excluded.set(joinedKey, assignments);
  }
  return assignments;
}

/**
 * The parts of unnestRows, columnList and excludedAssignments that depend only on the
 * columns, as raw SQL made once per column list (the column lists are module constants):
 * a round of deploys no longer builds and compiles 27 identifiers three times over.
 * The text is exactly what sql.id / sql.ref and sql.join write.
 */
interface ColumnFragments {
  /** `"u"."name", "u"."data"::jsonb, …` */
  readonly selected: RawBuilder<unknown>;
  /** `"name", "data", …` */
  readonly aliases: RawBuilder<unknown>;
  /** `::text[]` etc. per column (jsonb travels as text[]). */
  readonly casts: readonly RawBuilder<unknown>[];
  /** excludedAssignments per conflict key. */
  readonly excluded: Map<string, { readonly text: string; readonly raw: RawBuilder<unknown> }>;
  /** The same as text (unnestRowsText, columnListText). */
  readonly texts: {
    readonly selected: string;
    readonly aliases: string;
    readonly casts: readonly string[];
    /** The places of the jsonb columns. */
    readonly jsonb: readonly number[];
    /** unnestRowsText's ROWS FROM form: the jsonb columns selected as they are (jsonb already). */
    readonly rowsFrom: { readonly selected: string };
  };
}

const columnFragmentsMade = new WeakMap<readonly UnnestColumn[], ColumnFragments>();

function columnFragments(columns: readonly UnnestColumn[]): ColumnFragments {
  let fragments = columnFragmentsMade.get(columns);
  if (fragments === undefined) {
    const texts = {
      selected: columns.map(([name, type]) => `"u".${identifier(name)}${type === 'jsonb' ? '::jsonb' : ''}`).join(', '),
      aliases: columns.map(([name]) => identifier(name)).join(', '),
      casts: columns.map(([, type]) => (type === 'jsonb' ? '::text[]' : `::${type}[]`)),
      jsonb: columns.flatMap(([, type], index) => (type === 'jsonb' ? [index] : [])),
      rowsFrom: { selected: columns.map(([name]) => `"u".${identifier(name)}`).join(', ') },
    };
    fragments = {
      selected: sql.raw(texts.selected),
      aliases: sql.raw(texts.aliases),
      casts: texts.casts.map((cast) => sql.raw(cast)),
      excluded: new Map(),
      texts,
    };
    columnFragmentsMade.set(columns, fragments);
  }
  return fragments;
}

/** An identifier as Kysely's PostgreSQL compiler writes it (double quotes, inner ones doubled). */
function identifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * Transaction-scoped advisory locks, one per key, taken in sorted order (no deadlock between
 * two batches). Two-key form with a class id, so they never collide with other lock users.
 */
export const PROJECTION_LOCK_CLASS = 0x53545250; // 'STRP'
export function lockKeysStatement(keys: readonly string[]): RawBuilder<unknown> {
  const sorted = [...new Set(keys)].sort();
  if (sorted.length === 1) return sql`select pg_advisory_xact_lock(${PROJECTION_LOCK_CLASS}::int4, hashtext(${sorted[0]}::text))`;
  return sql`select pg_advisory_xact_lock(${PROJECTION_LOCK_CLASS}::int4, h)
    from (select hashtext(k) as h from unnest(${sorted}::text[]) with ordinality as t(k, n) order by n) as s`;
}

/**
 * A text value spliced into COPY text (COPY takes no parameters) as an escape string
 * literal: backslashes and quotes escaped, whatever standard_conforming_strings says.
 */
export function sqlTextLiteral(value: string): string {
  if (value.includes('\0')) throw new StrataError('STRATA_ERR_INVARIANT', 'a text value for a COPY statement holds a NUL character');
  return `E'${value.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}

/** An SQL identifier, double-quoted (quotes inside doubled). */
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
