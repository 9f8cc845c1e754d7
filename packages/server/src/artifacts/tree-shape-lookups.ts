import { ArtifactTreePaths, invariant } from '@strata/core';
import { sql } from 'kysely';
import type { CompiledQuery, Kysely } from 'kysely';
import type { ArtifactReader } from '../ports.ts';

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
 * `hotRead`: on PGlite one pass into PostgreSQL instead of six); default: through `db`.
 */
export function sqlTreeShapeQuery(db: Kysely<any>, read: <R>(query: CompiledQuery<R>) => Promise<readonly R[]> = async (query) => (await db.executeQuery(query)).rows): TreeShapeQuery {
  return async (questions) => {
    const repos = questions.map((question) => question.repo);
    const paths = questions.map((question) => ArtifactTreePaths.trim(question.path));
    const parents = paths.map((path) => parentOf(path) ?? '');
    const statement = sql<{ ordinal: string | number; is_file: boolean; is_folder: boolean; parent_is_file: boolean }>`
      select t.ordinal,
             (t.path <> '' and exists(select 1 from artifacts a
                where a.repo = t.repo and a.path = t.path and a.present)) as is_file,
             (t.path = '' or exists(select 1 from artifacts a
                where a.repo = t.repo and a.present
                  and a.path >= (t.path || '/') collate "C" and a.path < (t.path || '0') collate "C")) as is_folder,
             (t.parent <> '' and exists(select 1 from artifacts a
                where a.repo = t.repo and a.path = t.parent and a.present)) as parent_is_file
        from unnest(${repos}::text[], ${paths}::text[], ${parents}::text[]) with ordinality as t(repo, path, parent, ordinal)
       order by t.ordinal`.compile(db);
    const rows = await read(statement);
    invariant(rows.length === questions.length, `tree-shape lookup answered ${rows.length} of ${questions.length} questions`);
    return rows.map((row) => ({ isFile: row.is_file, isFolder: row.is_folder, parentIsFile: row.parent_is_file }));
  };
}

interface Waiting {
  readonly question: TreeShapeQuestion;
  resolve(shape: TreeShape): void;
  reject(error: unknown): void;
}

/**
 * Coalesces tree-shape lookups: one query in flight at a time, and the questions that arrive
 * while it runs are answered together by the next (as the stream writer groups appends), so
 * 16 concurrent deploys cost a few statements per round instead of two each. The first query
 * after an idle moment starts once the requests read in the same turn of the event loop
 * have asked too (setImmediate): the clients a round answered come back together, and
 * without the wait the first of them got a query of its own and the rest a second one
 * (traced with 16 clients on PGlite: queries of 1 and 15 questions every round). Generic
 * deploys and npm publishes share one instance (app.ts).
 */
export class TreeShapeLookups {
  readonly #query: TreeShapeQuery;
  #waiting: Waiting[] = [];
  #running = false;

  constructor(query: TreeShapeQuery) {
    this.#query = query;
  }

  shape(repo: string, path: string): Promise<TreeShape> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ question: { repo, path }, resolve, reject });
      if (!this.#running) {
        this.#running = true;
        setImmediate(() => void this.#run());
      }
    });
  }

  async #run(): Promise<void> {
    try {
      while (this.#waiting.length > 0) {
        const batch = this.#waiting.splice(0, treeShapeQuestionsPerQueryMax);
        try {
          const shapes = await this.#query(batch.map((waiting) => waiting.question));
          batch.forEach((waiting, index) => waiting.resolve(shapes[index]!));
        } catch (error) {
          for (const waiting of batch) waiting.reject(error);
        }
      }
    } finally {
      this.#running = false;
    }
  }
}
