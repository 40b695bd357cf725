/** Databases to dump in tests: two with tables, a role with a password, a membership and grants; and their contents, table by table. */
import type { PostgresCluster } from './postgres.ts';

export const APP_ROLE = 'app';
export const APP_PASSWORD = 'app-password-9c1e';

/** shop (coupons with a serial key, an index, a comment and grants; orders) and crm (contacts, notes), and the role app. */
export async function createShopAndCrm(cluster: PostgresCluster): Promise<void> {
  await cluster.sql(`CREATE ROLE ${APP_ROLE} LOGIN PASSWORD '${APP_PASSWORD}'`);
  await cluster.sql(`GRANT pg_read_all_stats TO ${APP_ROLE}`);
  await cluster.sql('CREATE DATABASE shop');
  await cluster.sql('CREATE DATABASE crm');
  await cluster.sql(`CREATE TABLE coupons (id serial PRIMARY KEY, code text UNIQUE NOT NULL, percent int NOT NULL DEFAULT 10);
    CREATE INDEX coupons_percent ON coupons (percent);
    COMMENT ON TABLE coupons IS 'discount codes';
    GRANT SELECT, INSERT ON coupons TO ${APP_ROLE};
    INSERT INTO coupons (code, percent) SELECT 'C' || g, g % 50 FROM generate_series(1, 5000) g;
    CREATE TABLE orders (id bigint PRIMARY KEY, coupon text, total numeric(10, 2));
    INSERT INTO orders SELECT g, 'C' || (g % 5000), g * 1.25 FROM generate_series(1, 20000) g;`, 'shop');
  await cluster.sql(`CREATE TABLE contacts (id int PRIMARY KEY, name text, email text);
    INSERT INTO contacts SELECT g, 'name ' || g, 'user' || g || '@example.com' FROM generate_series(1, 30000) g;
    CREATE TABLE notes (contact int REFERENCES contacts, body text);
    INSERT INTO notes SELECT g % 30000 + 1, repeat('note ', g % 20) FROM generate_series(1, 40000) g;`, 'crm');
}

/** Every table of the database's public schema: its row count and an MD5 of its rows in order. */
export async function tableContents(cluster: PostgresCluster, database: string): Promise<Record<string, string>> {
  const tables = (await cluster.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", database)).split('\n').filter(Boolean);
  const contents: Record<string, string> = {};
  for (const table of tables) contents[table] = await tableContent(cluster, database, table);
  return contents;
}

export async function tableContent(cluster: PostgresCluster, database: string, table: string): Promise<string> {
  return cluster.sql(`SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM ${table} t`, database);
}

/** The role's password hash and memberships, as pg_authid keeps them. */
export async function roleState(cluster: PostgresCluster, role: string): Promise<string> {
  return cluster.sql(`SELECT rolpassword || ' ' || rolcanlogin || ' ' || (SELECT string_agg(b.rolname, ',') FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid WHERE m.member = a.oid)
    FROM pg_authid a WHERE rolname = '${role}'`);
}
