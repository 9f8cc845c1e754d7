import { ArtifactTreePaths, invariant } from '@strata/core';
import type { CompiledQuery, Kysely } from 'kysely';
import { sqlText, type SqlText } from '@strata/store';
import type { ArtifactReader } from '../ports.ts';
import type { GuardQuery } from '../stream-writer.ts';

/** What a deploy of `path` must know about the tree around it. */
export interface TreeShape {
  /** `path` itself is a present file (a deploy replaces it; an npm publish refuses). */
  readonly isFile: boolean;
  /** A present file lies below `path`. */
  readonly isFolder: boolean;
  /** The parent of `path` is a present file. */
  readonly parentIsFile: boolean;
}

export interface TreeShapeQuestion {
  readonly repo: string;
  readonly path: string;
}

/** Answers many questions at once, in order. */
export type TreeShapeQuery = (questions: readonly TreeShapeQuestion[]) => Promise<readonly TreeShape[]>;

/** Questions answered by one query; more wait for the next. */
export const treeShapeQuestionsPerQueryMax = 256;

function parentOf(path: string): string | undefined {
  const slash = path.lastIndexOf('/');
  return slash > 0 ? path.slice(0, slash) : undefined;
}

/** The slow path (in-memory readers in tests): three reader calls per question. */
export function readerTreeShapeQuery(artifacts: Pick<ArtifactReader, 'isFolder' | 'isFile'>): TreeShapeQuery {
  return (questions) =>
    Promise.all(
      questions.map(async ({ repo, path }) => {
        const parent = parentOf(path);
        const [isFile, isFolder, parentIsFile] = await Promise.all([
          artifacts.isFile(repo, path),
          artifacts.isFolder(repo, path),
          parent === undefined ? Promise.resolve(false) : artifacts.isFile(repo, parent),
        ]);
        return { isFile, isFolder, parentIsFile };
      }),
    );
}

/**
 * One statement for a whole batch, over the artifact-tree projection's table (the same
 * predicates as ArtifactTreeQueries.folderExists and getFile): on PostgreSQL every statement
 * takes a pool connection, on PGlite the worker's one session. `read` runs it (the store's
 * `hotRead`: on PGlite one pass into PostgreSQL instead of six, on PostgreSQL a prepared
 * statement); default: through `db`. Each `exists` reads the primary key's rows in a
 * subquery that ends in `offset 0` and tests `present` outside it: a probe of the primary
 * key per question even in a generic plan made while the table was empty (checked with
 * EXPLAIN). With `present` inside, such a plan scanned the partial index on (repo, parent,
 * name) by repository alone, every present file of it per question (a round's deploys at
 * a fifth of their rate until ANALYZE replanned); without `offset 0` an `exists` may become
 * a hashed scan of the whole table.
 */
export function sqlTreeShapeQuery(db: Kysely<any>, read: <R>(query: CompiledQuery<R>) => Promise<readonly R[]> = async (query) => (await db.executeQuery(query)).rows): TreeShapeQuery {
  return async (questions) => {
    const rows = await read(treeShapeStatement(questions).compile() as CompiledQuery<TreeShapeRow>);
    invariant(rows.length === questions.length, `tree-shape lookup answered ${rows.length} of ${questions.length} questions`);
    return rows.map(treeShapeOf);
  };
}

/** A row of treeShapeStatement: the question's 1-based ordinal and its shape. */
export interface TreeShapeRow {
  readonly ordinal: string | number;
  readonly is_file: boolean;
  readonly is_folder: boolean;
  readonly parent_is_file: boolean;
}

export function treeShapeOf(row: TreeShapeRow): TreeShape {
  return { isFile: row.is_file, isFolder: row.is_folder, parentIsFile: row.parent_is_file };
}

/** The statement of sqlTreeShapeQuery: one row per question, in order (text, sql-text.ts: built per round). */
function treeShapeStatement(questions: readonly TreeShapeQuestion[]): SqlText {
  const repos = questions.map((question) => question.repo);
  const paths = questions.map((question) => ArtifactTreePaths.trim(question.path));
  const parents = paths.map((path) => parentOf(path) ?? '');
  return sqlText`
    select t.ordinal,
           (t.path <> '' and exists(select 1 from (select a.present from artifacts a
              where a.repo = t.repo and a.path = t.path offset 0) as a where a.present)) as is_file,
           (t.path = '' or exists(select 1 from (select a.present from artifacts a
              where a.repo = t.repo
                and a.path >= (t.path || '/') collate "C" and a.path < (t.path || '0') collate "C" offset 0) as a where a.present)) as is_folder,
           (t.parent <> '' and exists(select 1 from (select a.present from artifacts a
              where a.repo = t.repo and a.path = t.parent offset 0) as a where a.present)) as parent_is_file
      from unnest(${repos}::text[], ${paths}::text[], ${parents}::text[]) with ordinality as t(repo, path, parent, ordinal)
     order by t.ordinal`;
}

/**
 * The questions whose path is not free for a new file (a present file, a folder holding
 * one, or below a present file), as a stream writer's guard query (CommandGuard): no rows
 * when every path is free, else a TreeShapeRow per question that is not. The lookup then
 * costs no query of its own: it runs in the append's first round trip, after its locks.
 */
export const treeShapeGuardQuery: GuardQuery<TreeShapeQuestion> = {
  statement: (questions) => sqlText`select * from (${treeShapeStatement(questions)}) as s where s.is_file or s.is_folder or s.parent_is_file`,
};

interface Waiting {
  readonly question: TreeShapeQuestion;
  resolve(shape: TreeShape): void;
  reject(error: unknown): void;
}

/**
 * Coalesces tree-shape lookups: at most `queriesInFlightMax` queries in flight at a time
 * (default one), and the questions that arrive while they run are answered together by the
 * next (as the stream writer groups appends), so 16 concurrent deploys cost a few statements
 * per round instead of two each. A query starts once the requests read in the same turn of
 * the event loop have asked too (setImmediate): the clients a round answered come back
 * together, and without the wait the first of them got a query of its own and the rest a
 * second one (traced with 16 clients on PGlite: queries of 1 and 15 questions every round).
 * Generic deploys and npm publishes share one instance (app.ts).
 *
 * With two in flight (PostgreSQL, whose pool has other connections), the questions of the
 * requests read after the first query started get their own query at once instead of
 * waiting for it: a round's last deploys are answered one query sooner, while the round's
 * append waits for them (traced: the second round trip waited 0.5-0.8 ms for the checks).
 */
export class TreeShapeLookups {
  readonly #query: TreeShapeQuery;
  readonly #queriesInFlightMax: number;
  #waiting: Waiting[] = [];
  #inFlight = 0;
  #scheduled = false;

  constructor(query: TreeShapeQuery, options: { readonly queriesInFlightMax?: number } = {}) {
    this.#query = query;
    const queriesInFlightMax = options.queriesInFlightMax ?? 1;
    invariant(Number.isSafeInteger(queriesInFlightMax) && queriesInFlightMax >= 1, 'queriesInFlightMax must be a positive integer');
    this.#queriesInFlightMax = queriesInFlightMax;
  }

  shape(repo: string, path: string): Promise<TreeShape> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ question: { repo, path }, resolve, reject });
      this.#schedule();
    });
  }

  /** Starts a query at the next setImmediate, unless one is scheduled or none may start now. */
  #schedule(): void {
    if (this.#scheduled || this.#inFlight >= this.#queriesInFlightMax || this.#waiting.length === 0) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#start();
    });
  }

  #start(): void {
    while (this.#waiting.length > 0 && this.#inFlight < this.#queriesInFlightMax) {
      const batch = this.#waiting.splice(0, treeShapeQuestionsPerQueryMax);
      this.#inFlight++;
      void this.#run(batch);
    }
  }

  async #run(batch: readonly Waiting[]): Promise<void> {
    try {
      const shapes = await this.#query(batch.map((waiting) => waiting.question));
      batch.forEach((waiting, index) => waiting.resolve(shapes[index]!));
    } catch (error) {
      for (const waiting of batch) waiting.reject(error);
    } finally {
      this.#inFlight--;
      // Questions that arrived meanwhile: at once, as before (they have waited a whole query already).
      if (this.#waiting.length > 0 && !this.#scheduled) this.#start();
    }
  }
}
