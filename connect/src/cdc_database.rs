//! What the CDC source asks PostgreSQL, all through plain SQL on one
//! tokio-postgres connection: the publication and the logical replication
//! slot (pgoutput), the catalog (columns, primary keys), a snapshot's rows,
//! and the slot's changes, peeked without consuming them and advanced only
//! once they are delivered.

use crate::change_event::Table;
use crate::pgoutput::{Cell, Column, Relation, Tuple};
use crate::postgres::{quoted, reason};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, GenericClient};

/// `"schema"."table"`.
fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quoted(schema), quoted(table))
}

/// An LSN in PostgreSQL's text form, `X/Y`.
pub fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// The slot is held by another session: a killed worker's backend that has
/// not noticed yet, which lets go of it soon.
pub fn slot_busy(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::OBJECT_IN_USE)
}

/// Creates the publication of `tables` (inserts, updates and deletes)
/// unless it exists; without `create`, a missing one is an error, and so is
/// one that does not publish every table (their changes would never come).
pub async fn ensure_publication(
    client: &Client,
    name: &str,
    tables: &[(String, String)],
    create: bool,
) -> Result<(), String> {
    let exists = client
        .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&name])
        .await
        .map_err(|e| format!("cannot look up publication {name}: {}", reason(&e)))?
        .is_some();
    if exists {
        return check_publication(client, name, tables).await;
    }
    if !create {
        return Err(format!(
            "publication {name} does not exist (and publication.autocreate is off)"
        ));
    }
    let list: Vec<String> = tables.iter().map(|(s, t)| qualified(s, t)).collect();
    let sql = format!(
        "CREATE PUBLICATION {} FOR TABLE {} WITH (publish = 'insert, update, delete')",
        quoted(name),
        list.join(", ")
    );
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| format!("cannot create publication {name}: {}", reason(&e)))
}

async fn check_publication(
    client: &Client,
    name: &str,
    tables: &[(String, String)],
) -> Result<(), String> {
    let published: Vec<(String, String)> = client
        .query(
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
            &[&name],
        )
        .await
        .map_err(|e| format!("cannot look up publication {name}: {}", reason(&e)))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    match tables.iter().find(|t| !published.contains(t)) {
        Some((schema, table)) => Err(format!(
            "publication {name} does not publish {schema}.{table}"
        )),
        None => Ok(()),
    }
}

/// The slot's confirmed position (the end of the last transaction it was
/// advanced past), or `None` if there is no such slot. A slot of another
/// plugin or database is an error.
pub async fn slot_position(client: &Client, slot: &str) -> Result<Option<u64>, String> {
    let row = client
        .query_opt(
            "SELECT plugin::text, database = current_database(), \
             (confirmed_flush_lsn - '0/0'::pg_lsn)::int8 \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(|e| format!("cannot look up slot {slot}: {}", reason(&e)))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let plugin: Option<String> = row.get(0);
    let here: Option<bool> = row.get(1);
    let lsn: Option<i64> = row.get(2);
    if plugin.as_deref() != Some("pgoutput") || here != Some(true) {
        return Err(format!(
            "slot {slot} exists but is not a pgoutput slot of this database"
        ));
    }
    Ok(Some(lsn.unwrap_or(0) as u64))
}

/// Creates the slot (pgoutput) and returns its start.
pub async fn create_slot(client: &Client, slot: &str) -> Result<u64, String> {
    let row = client
        .query_one(
            "SELECT (lsn - '0/0'::pg_lsn)::int8 FROM pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&slot],
        )
        .await
        .map_err(|e| format!("cannot create slot {slot}: {}", reason(&e)))?;
    Ok(row.get::<_, i64>(0) as u64)
}

/// A table's primary key columns in key order (empty without one).
pub async fn primary_key(
    client: &impl GenericClient,
    relation: u32,
) -> Result<Vec<String>, String> {
    let rows = client
        .query(
            "SELECT a.attname::text FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = $1 AND i.indisprimary \
             ORDER BY array_position(i.indkey::int2[], a.attnum)",
            &[&relation],
        )
        .await
        .map_err(|e| {
            format!(
                "cannot read the primary key of table {relation}: {}",
                reason(&e)
            )
        })?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// A table as the catalog describes it, for its snapshot.
async fn table(client: &impl GenericClient, schema: &str, name: &str) -> Result<Table, String> {
    let failed =
        |e: tokio_postgres::Error| format!("cannot describe {schema}.{name}: {}", reason(&e));
    let id: u32 = client
        .query_opt(
            "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2",
            &[&schema, &name],
        )
        .await
        .map_err(failed)?
        .ok_or_else(|| format!("table {schema}.{name} does not exist"))?
        .get(0);
    let columns = client
        .query(
            "SELECT attname::text, atttypid FROM pg_attribute \
             WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[&id],
        )
        .await
        .map_err(failed)?
        .iter()
        .map(|r| Column {
            name: r.get(0),
            type_oid: r.get(1),
            key: false,
        })
        .collect();
    Ok(Table {
        relation: Relation {
            id,
            schema: schema.to_string(),
            table: name.to_string(),
            columns,
        },
        primary_key: primary_key(client, id).await?,
    })
}

/// Every row of a table as text tuples (the form pgoutput sends), read in
/// the caller's transaction.
pub async fn snapshot(
    client: &impl GenericClient,
    schema: &str,
    name: &str,
) -> Result<(Table, Vec<Tuple>), String> {
    let table = table(client, schema, name).await?;
    let columns: Vec<String> = table
        .relation
        .columns
        .iter()
        .map(|c| format!("{}::text", quoted(&c.name)))
        .collect();
    let sql = format!(
        "SELECT {} FROM {}",
        columns.join(", "),
        qualified(schema, name)
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|e| format!("cannot read {schema}.{name}: {}", reason(&e)))?;
    let tuples = rows
        .iter()
        .map(|row| {
            (0..row.len())
                .map(|i| match row.get::<_, Option<String>>(i) {
                    Some(text) => Cell::Text(text),
                    None => Cell::Null,
                })
                .collect()
        })
        .collect();
    Ok((table, tuples))
}

/// Up to about `changes` pgoutput messages of the slot (whole transactions:
/// PostgreSQL stops only after a commit), without consuming them.
pub async fn peek(
    client: &Client,
    slot: &str,
    publication: &str,
    changes: usize,
) -> Result<Vec<Vec<u8>>, tokio_postgres::Error> {
    let changes = i32::try_from(changes).unwrap_or(i32::MAX);
    let rows = client
        .query(
            "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2, \
             'proto_version', '1', 'publication_names', $3)",
            &[&slot, &changes, &publication],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Moves the slot past `lsn`: PostgreSQL may then drop the WAL before it.
pub async fn advance(client: &Client, slot: &str, lsn: u64) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)",
            &[&slot, &lsn_text(lsn)],
        )
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_and_lsns_written_as_postgres_does() {
        assert_eq!(qualified("public", "my \"t\""), r#""public"."my ""t""""#);
        assert_eq!(lsn_text(0x016B_3748), "0/16B3748");
        assert_eq!(lsn_text((3 << 32) | 0x10), "3/10");
    }
}
