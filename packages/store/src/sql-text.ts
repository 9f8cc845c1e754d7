/**
 * Statements of the append's hot path built as text: a template tag like Kysely's `sql`
 * (values become numbered parameters, nested statements are spliced in), without Kysely's
 * operation nodes. Kysely builds a frozen node per fragment and value and walks them all
 * again to compile; for the five to eight statements of every append batch, with dozens of
 * array parameters each, that was about a tenth of the batch's JavaScript (docs/benchmarks.md,
 * A, append8). The compiled query is the same kind the store sends everywhere
 * (`CompiledQuery`: text with $1, $2, … in order, and the parameters).
 */
import { CompiledQuery, type Kysely, type RawBuilder } from 'kysely';
import { StrataError } from '@strata/core';

/** A parameter of an SqlText (its value, sent as `pg` would send it). */
export class Parameter {
  constructor(readonly value: unknown) {}
}

/** Text spliced as is (identifiers, fixed SQL): see `rawText`. */
class RawText {
  constructor(readonly text: string) {}
}

/** A statement or a fragment of one: text pieces and parameters, in order. */
export class SqlText {
  constructor(readonly chunks: readonly (string | Parameter)[]) {}

  /** The statement with its parameters numbered $1, $2, … in order. */
  compile(): CompiledQuery {
    let text = '';
    const parameters: unknown[] = [];
    for (const chunk of this.chunks) {
      if (typeof chunk === 'string') {
        text += chunk;
      } else {
        parameters.push(chunk.value);
        text += `$${parameters.length}`;
      }
    }
    return CompiledQuery.raw(text, parameters);
  }
}

/**
 * `sqlText\`select … ${value} …\``: each value a parameter, except an SqlText (spliced in,
 * its parameters renumbered) or a `rawText` (spliced as is).
 */
export function sqlText(strings: TemplateStringsArray, ...values: readonly unknown[]): SqlText {
  const chunks: (string | Parameter)[] = [strings[0]!];
  for (let index = 0; index < values.length; index++) {
    const value = values[index];
    if (value instanceof SqlText) chunks.push(...value.chunks);
    else if (value instanceof RawText) chunks.push(value.text);
    else chunks.push(new Parameter(value));
    chunks.push(strings[index + 1]!);
  }
  return new SqlText(chunks);
}

/** Text spliced into an sqlText as is: only fixed SQL, never a value. */
export function rawText(text: string): RawText {
  return new RawText(text);
}

/** `parts` joined by `separator` (default ', '), as one fragment. */
export function joinText(parts: readonly SqlText[], separator = ', '): SqlText {
  const chunks: (string | Parameter)[] = [];
  parts.forEach((part, index) => {
    if (index > 0) chunks.push(separator);
    chunks.push(...part.chunks);
  });
  return new SqlText(chunks);
}

const PLACEHOLDER = /\$([0-9]+)/g;

/**
 * A statement of either kind as an SqlText: a Kysely builder is compiled (by `db`) and its
 * placeholders, which must appear once each and in order (as Kysely compiles them), become
 * parameters again, so that it can be spliced into an sqlText.
 */
export function asSqlText<DB>(statement: SqlText | RawBuilder<unknown>, db: Kysely<DB>): SqlText {
  if (statement instanceof SqlText) return statement;
  const compiled = statement.compile(db);
  const chunks: (string | Parameter)[] = [];
  let at = 0;
  let next = 1;
  for (const match of compiled.sql.matchAll(PLACEHOLDER)) {
    if (Number(match[1]) !== next || next > compiled.parameters.length) {
      throw new StrataError('STRATA_ERR_INVARIANT', `unexpected placeholder ${match[0]} in a statement`);
    }
    chunks.push(compiled.sql.slice(at, match.index), new Parameter(compiled.parameters[next - 1]));
    at = match.index + match[0].length;
    next++;
  }
  if (next !== compiled.parameters.length + 1) throw new StrataError('STRATA_ERR_INVARIANT', `a statement uses ${next - 1} of its ${compiled.parameters.length} parameters`);
  chunks.push(compiled.sql.slice(at));
  return new SqlText(chunks);
}

/** A statement of either kind, compiled. */
export function compiledStatement<DB>(statement: SqlText | RawBuilder<unknown>, db: Kysely<DB>): CompiledQuery {
  return statement instanceof SqlText ? statement.compile() : statement.compile(db);
}

/** Runs a statement of either kind on `db` (an open transaction, say). */
export async function executeStatement<Row, DB>(statement: SqlText | RawBuilder<Row>, db: Kysely<DB>): Promise<readonly Row[]> {
  return (await db.executeQuery<Row>(compiledStatement(statement as SqlText | RawBuilder<unknown>, db) as CompiledQuery<Row>)).rows;
}
