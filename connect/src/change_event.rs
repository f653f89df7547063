//! Change events in Debezium's shape: the key is the row's primary key
//! columns, the value `{before, after, op, source}` with `op` one of `r`
//! (a snapshot read), `c`, `u`, `d`; a delete is followed by a tombstone
//! (null value) for its key, so a compacted topic drops the row. One topic
//! per table: `<topic.prefix>.<schema>.<table>`.

use crate::data::{ConnectRecord, Data};
use crate::pgoutput::{Cell, Column, Relation, Tuple};
use serde_json::{json, Map, Value};

/// A captured table: its columns (as a Relation message lists them) and
/// its primary key, which a `REPLICA IDENTITY FULL` relation does not tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub relation: Relation,
    pub primary_key: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Create,
    Update,
    Delete,
}

impl Op {
    fn code(self) -> &'static str {
        match self {
            Op::Read => "r",
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
        }
    }
}

/// Where a change came from, for the value's `source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// The end of the transaction's commit record (for a snapshot read,
    /// the slot's start).
    pub lsn: u64,
    /// `None` for a snapshot read.
    pub txid: Option<u32>,
    pub ts_ms: i64,
}

/// A row's columns as JSON; `identity_only` keeps the replica identity
/// columns (an old key tuple sends the others as nulls). Unchanged TOASTed
/// values are left out: pgoutput does not send them.
pub fn row(columns: &[Column], tuple: &Tuple, identity_only: bool) -> Map<String, Value> {
    columns
        .iter()
        .zip(tuple)
        .filter(|(column, _)| !identity_only || column.key)
        .filter_map(|(column, cell)| {
            let value = match cell {
                Cell::Null => Value::Null,
                Cell::Unchanged => return None,
                Cell::Text(text) => typed(column.type_oid, text),
            };
            Some((column.name.clone(), value))
        })
        .collect()
}

/// A column's text output as JSON: booleans and integers and finite floats
/// as themselves, everything else (numeric included, to keep its
/// precision) as PostgreSQL's text.
fn typed(type_oid: u32, text: &str) -> Value {
    const BOOL: u32 = 16;
    const INTEGERS: [u32; 4] = [20, 21, 23, 26];
    const FLOATS: [u32; 2] = [700, 701];
    let parsed = match type_oid {
        // pgoutput sends the output function's `t`, a `::text` cast in the
        // snapshot gives `true`.
        BOOL => match text {
            "t" | "true" => Some(Value::Bool(true)),
            "f" | "false" => Some(Value::Bool(false)),
            _ => None,
        },
        t if INTEGERS.contains(&t) => text.parse::<i64>().ok().map(Value::from),
        t if FLOATS.contains(&t) => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        _ => None,
    };
    parsed.unwrap_or_else(|| Value::String(text.to_string()))
}

/// The records of one change: the event, and after a delete its tombstone.
pub fn records(
    topic_prefix: &str,
    table: &Table,
    op: Op,
    before: Option<Map<String, Value>>,
    after: Option<Map<String, Value>>,
    source: Source,
) -> Vec<ConnectRecord> {
    let relation = &table.relation;
    let topic = format!("{topic_prefix}.{}.{}", relation.schema, relation.table);
    let key = match after.as_ref().or(before.as_ref()) {
        Some(row) if !table.primary_key.is_empty() => {
            let fields: Map<String, Value> = table
                .primary_key
                .iter()
                .map(|k| (k.clone(), row.get(k).cloned().unwrap_or(Value::Null)))
                .collect();
            Data::Json(Value::Object(fields))
        }
        _ => Data::NULL,
    };
    let value = json!({
        "before": before,
        "after": after,
        "op": op.code(),
        "source": {
            "schema": relation.schema,
            "table": relation.table,
            "lsn": source.lsn,
            "txId": source.txid,
            "ts_ms": source.ts_ms,
        },
    });
    let event = ConnectRecord {
        topic: topic.clone(),
        key: key.clone(),
        value: Data::Json(value),
    };
    if op == Op::Delete && !key.is_null() {
        let tombstone = ConnectRecord {
            topic,
            key,
            value: Data::NULL,
        };
        vec![event, tombstone]
    } else {
        vec![event]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let column = |name: &str, type_oid, key| Column {
            name: name.into(),
            type_oid,
            key,
        };
        Table {
            relation: Relation {
                id: 1,
                schema: "public".into(),
                table: "orders".into(),
                columns: vec![
                    column("id", 23, true),
                    column("paid", 16, false),
                    column("price", 1700, false),
                    column("weight", 701, false),
                    column("note", 25, false),
                ],
            },
            primary_key: vec!["id".into()],
        }
    }

    fn text(s: &str) -> Cell {
        Cell::Text(s.into())
    }

    #[test]
    fn columns_become_typed_json() {
        let t = table();
        let tuple = vec![text("7"), text("t"), text("10.50"), text("NaN"), Cell::Null];
        assert_eq!(
            Value::Object(row(&t.relation.columns, &tuple, false)),
            json!({"id": 7, "paid": true, "price": "10.50", "weight": "NaN", "note": null})
        );
        let key_tuple = vec![text("7"), Cell::Null, Cell::Null, Cell::Null, Cell::Null];
        assert_eq!(
            Value::Object(row(&t.relation.columns, &key_tuple, true)),
            json!({"id": 7})
        );
        let toasted = vec![
            text("7"),
            text("false"),
            text("1"),
            text("2.5"),
            Cell::Unchanged,
        ];
        assert_eq!(
            Value::Object(row(&t.relation.columns, &toasted, false)),
            json!({"id": 7, "paid": false, "price": "1", "weight": 2.5})
        );
    }

    #[test]
    fn events_have_debeziums_envelope_and_deletes_a_tombstone() {
        let t = table();
        let source = Source {
            lsn: 99,
            txid: Some(5),
            ts_ms: 1000,
        };
        let before = json!({"id": 7, "note": "a"}).as_object().cloned();
        let update = records("db", &t, Op::Update, before.clone(), None, source);
        assert_eq!(update.len(), 1);
        assert_eq!(update[0].topic, "db.public.orders");
        assert_eq!(update[0].key, Data::Json(json!({"id": 7})));
        assert_eq!(
            update[0].value,
            Data::Json(json!({
                "before": {"id": 7, "note": "a"},
                "after": null,
                "op": "u",
                "source": {"schema": "public", "table": "orders", "lsn": 99, "txId": 5, "ts_ms": 1000},
            }))
        );
        let delete = records("db", &t, Op::Delete, before, None, source);
        assert_eq!(delete.len(), 2);
        assert_eq!(delete[1].key, Data::Json(json!({"id": 7})));
        assert!(delete[1].value.is_null());

        let keyless = Table {
            primary_key: vec![],
            ..t
        };
        let read = records("db", &keyless, Op::Read, None, Some(Map::new()), source);
        assert!(read[0].key.is_null());
    }
}
