// The SQL of backup and restore (src/backup/backup.ts): generic over every table of the schema, so
// a table added by a later migration is carried without a change here. Rows travel as PostgreSQL's
// own JSON of the row (to_jsonb) and come back through jsonb_populate_recordset, so every type
// (timestamptz to the microsecond, bigint, jsonb, bytea) round-trips exactly, without JavaScript
// ever parsing a value.
import { sql } from 'kysely';
import type { Db } from '../db/handle.ts';

/** Kysely's own bookkeeping: not data. The backup names the migrations in its header instead. */
const NOT_DATA = new Set(['kysely_migration', 'kysely_migration_lock']);

export interface TableInfo {
  name: string;
  columns: string[];
}

/** Every table of the current schema, parents before children (foreign keys), then by name. */
export async function dataTables(db: Db): Promise<TableInfo[]> {
  const { rows: tables } = await sql<{ name: string; columns: string[] }>`
    select c.relname as name,
           array(select a.attname::text from pg_attribute a
                 where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped order by a.attnum) as columns
    from pg_class c
    where c.relkind = 'r' and c.relnamespace = current_schema()::regnamespace
    order by c.relname`.execute(db);
  const { rows: edges } = await sql<{ child: string; parent: string }>`
    select c.relname as child, p.relname as parent
    from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_class p on p.oid = k.confrelid
    where k.contype = 'f' and c.relnamespace = current_schema()::regnamespace and k.conrelid <> k.confrelid`.execute(db);
  const list = tables.filter((t) => !NOT_DATA.has(t.name));
  const parents = new Map(list.map((t) => [t.name, new Set(edges.filter((e) => e.child === t.name).map((e) => e.parent))]));
  const ordered: TableInfo[] = [];
  const done = new Set<string>();
  while (ordered.length < list.length) {
    const next = list.find((t) => !done.has(t.name) && [...parents.get(t.name)!].every((p) => done.has(p) || !parents.has(p)));
    if (!next) throw new Error('foreign keys form a cycle between tables; backup cannot order them');
    ordered.push({ name: next.name, columns: next.columns });
    done.add(next.name);
  }
  return ordered;
}

export async function appliedMigrations(db: Db): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db);
  return rows.map((r) => r.name);
}

export async function countRows(db: Db, table: string): Promise<number> {
  const { rows } = await sql<{ n: string }>`select count(*)::text as n from ${sql.table(table)}`.execute(db);
  return Number(rows[0]!.n);
}

/** Each row as PostgreSQL's JSON text. */
export async function rowsAsJson(db: Db, table: string): Promise<string[]> {
  const { rows } = await sql<{ r: string }>`select to_jsonb(t)::text as r from ${sql.table(table)} t`.execute(db);
  return rows.map((r) => r.r);
}

export async function hasRows(db: Db, table: string): Promise<boolean> {
  const { rows } = await sql<{ e: boolean }>`select exists (select 1 from ${sql.table(table)}) as e`.execute(db);
  return rows[0]!.e;
}

/** No instance may write while a restore runs; readers wait too (they would see a half-restored database). */
export async function lockTables(db: Db, tables: string[]): Promise<void> {
  await sql`lock table ${sql.join(tables.map((t) => sql.table(t)))} in access exclusive mode`.execute(db);
}

export async function deleteAll(db: Db, table: string): Promise<void> {
  await sql`delete from ${sql.table(table)}`.execute(db);
}

/** Insert rows given as JSON texts; unknown keys are refused by the caller (columns checked against the header). */
export async function insertJsonRows(db: Db, table: string, rows: string[]): Promise<void> {
  if (rows.length === 0) return;
  const array = `[${rows.join(',')}]`;
  await sql`insert into ${sql.table(table)} select * from jsonb_populate_recordset(null::${sql.table(table)}, ${array}::jsonb)`.execute(db);
}

/** Set every sequence owned by a column (serial, identity) past the largest value restored. */
export async function resetSequences(db: Db): Promise<string[]> {
  const { rows } = await sql<{ tbl: string; col: string; seq: string }>`
    select c.relname as tbl, a.attname as col, pg_get_serial_sequence(quote_ident(c.relname), a.attname) as seq
    from pg_attribute a join pg_class c on c.oid = a.attrelid
    where c.relkind = 'r' and c.relnamespace = current_schema()::regnamespace and a.attnum > 0 and not a.attisdropped
      and pg_get_serial_sequence(quote_ident(c.relname), a.attname) is not null`.execute(db);
  for (const r of rows) {
    await sql`select setval(${r.seq}::regclass, coalesce((select max(${sql.ref(r.col)}) from ${sql.table(r.tbl)}), 0) + 1, false)`.execute(
      db,
    );
  }
  return rows.map((r) => r.seq);
}
