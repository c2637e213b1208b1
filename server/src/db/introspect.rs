//! What the migrations actually produced, read back from the database catalogue. Used by the schema
//! drift test (columns must match schema.rs) and the migration round-trip test (down then up must give
//! the same schema), on both backends.

use std::collections::BTreeMap;

use diesel::sql_types::{Integer, Text};
use diesel::{QueryableByName, RunQueryDsl, sql_query};

use super::AnyConnection;

/// A column as the database sees it: normalised type name (lowercase) and nullability.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ColumnInfo {
    pub name: String,
    pub sql_type: String,
    pub nullable: bool,
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Integer)]
    nullable: i32,
}

#[derive(QueryableByName)]
struct LineRow {
    #[diesel(sql_type = Text)]
    line: String,
}

const MIGRATIONS_TABLE: &str = "__diesel_schema_migrations";

/// Tables (without diesel's own bookkeeping table) and their columns in declaration order.
pub fn columns(conn: &mut AnyConnection) -> diesel::QueryResult<BTreeMap<String, Vec<ColumnInfo>>> {
    let rows: Vec<ColumnRow> = match conn {
        AnyConnection::Postgresql(c) => sql_query(
            "SELECT table_name::text AS table_name, column_name::text AS column_name, \
                    data_type::text AS data_type, \
                    CASE WHEN is_nullable = 'YES' THEN 1 ELSE 0 END AS nullable \
             FROM information_schema.columns WHERE table_schema = current_schema() \
             ORDER BY table_name, ordinal_position",
        )
        .load(c)?,
        AnyConnection::Sqlite(c) => sql_query(
            "SELECT m.name AS table_name, p.name AS column_name, p.type AS data_type, \
                    CASE WHEN p.\"notnull\" = 1 THEN 0 ELSE 1 END AS nullable \
             FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' \
             ORDER BY m.name, p.cid",
        )
        .load(c)?,
    };
    let mut out: BTreeMap<String, Vec<ColumnInfo>> = BTreeMap::new();
    for r in rows {
        if r.table_name == MIGRATIONS_TABLE {
            continue;
        }
        out.entry(r.table_name).or_default().push(ColumnInfo {
            name: r.column_name,
            // SQLite's BLOB is PostgreSQL's BYTEA.
            sql_type: match r.data_type.to_ascii_lowercase().as_str() {
                "blob" => "bytea".to_string(),
                other => other.to_string(),
            },
            nullable: r.nullable != 0,
        });
    }
    Ok(out)
}

/// A textual dump of the whole schema (tables, columns, constraints, indexes, triggers, functions),
/// sorted, so two dumps compare equal exactly when the schemas are the same.
pub fn dump(conn: &mut AnyConnection) -> diesel::QueryResult<Vec<String>> {
    let rows: Vec<LineRow> = match conn {
        AnyConnection::Postgresql(c) => sql_query(
            "SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || \
                    is_nullable || ' ' || coalesce(column_default, '') AS line \
             FROM information_schema.columns WHERE table_schema = current_schema() \
             UNION ALL \
             SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || \
                    pg_get_constraintdef(oid) \
             FROM pg_constraint WHERE connamespace = current_schema()::regnamespace \
             UNION ALL \
             SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = current_schema() \
             UNION ALL \
             SELECT 'trigger ' || tgname || ' ' || tgenabled::text || ' ' || pg_get_triggerdef(oid) \
             FROM pg_trigger WHERE NOT tgisinternal \
             UNION ALL \
             SELECT 'function ' || proname || ' ' || md5(prosrc) \
             FROM pg_proc WHERE pronamespace = current_schema()::regnamespace \
             ORDER BY 1",
        )
        .load(c)?,
        AnyConnection::Sqlite(c) => sql_query(
            "SELECT type || ' ' || name || ' ' || tbl_name || ' ' || coalesce(sql, '') AS line \
             FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY 1",
        )
        .load(c)?,
    };
    Ok(rows.into_iter().map(|r| r.line).collect())
}

/// The normalised database type for a diesel SQL type as written in schema.rs
/// (`BigInt`, `Nullable<Text>`, …): (type, nullable).
pub fn expected_type(diesel_type: &str) -> (String, bool) {
    let compact: String = diesel_type.chars().filter(|c| !c.is_whitespace()).collect();
    let (inner, nullable) = match compact
        .strip_prefix("Nullable<")
        .and_then(|s| s.strip_suffix('>'))
    {
        Some(inner) => (inner.to_string(), true),
        None => (compact, false),
    };
    let db = match inner.as_str() {
        "BigInt" => "bigint",
        "Integer" => "integer",
        "SmallInt" => "smallint",
        "Text" => "text",
        "Bool" => "boolean",
        "Double" => "double precision",
        "Binary" => "bytea",
        other => other,
    };
    (db.to_string(), nullable)
}
