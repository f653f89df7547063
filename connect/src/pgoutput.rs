//! A decoder of pgoutput's messages (logical replication protocol version
//! 1, text tuples), as `pg_logical_slot_peek_binary_changes` returns them
//! one per row: Begin, Relation, Insert, Update, Delete and Commit. The
//! other kinds (Type, Origin, Truncate, logical messages) are named but
//! carry nothing a change event needs.

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Begin {
        xid: u32,
    },
    Commit {
        /// The end of the commit record: the slot's position once this
        /// transaction is delivered.
        end_lsn: u64,
        /// Milliseconds since the Unix epoch.
        ts_ms: i64,
    },
    Relation(Relation),
    Insert {
        relation: u32,
        new: Tuple,
    },
    Update {
        relation: u32,
        /// The old row: its replica identity key (`K`), the whole row with
        /// `REPLICA IDENTITY FULL` (`O`), or nothing when the key did not
        /// change.
        old: Option<OldTuple>,
        new: Tuple,
    },
    Delete {
        relation: u32,
        old: OldTuple,
    },
    /// Type, Origin, Truncate and logical decoding messages.
    Other(u8),
}

/// A table's description, sent before its first change in a decoding
/// session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub id: u32,
    pub schema: String,
    pub table: String,
    pub columns: Vec<Column>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub type_oid: u32,
    /// Part of the replica identity (with `FULL`, every column is).
    pub key: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OldTuple {
    Key(Tuple),
    Full(Tuple),
}

/// One value per column of the relation, in its order.
pub type Tuple = Vec<Cell>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    /// A TOASTed value the change left as it was: pgoutput does not send it.
    Unchanged,
    Text(String),
}

/// Why bytes are not a pgoutput message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pgoutput message {kind:?}: {reason}")]
pub struct DecodeError {
    kind: char,
    reason: String,
}

pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    let Some((&kind, body)) = bytes.split_first() else {
        return Err(DecodeError {
            kind: '?',
            reason: "empty".into(),
        });
    };
    let mut reader = Reader { bytes: body };
    let message = reader.message(kind).map_err(|reason| DecodeError {
        kind: char::from(kind),
        reason,
    })?;
    Ok(message)
}

/// The bytes not read yet.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn message(&mut self, kind: u8) -> Result<Message, String> {
        Ok(match kind {
            b'B' => {
                let _final_lsn = self.u64()?;
                let _ts = self.i64()?;
                Message::Begin { xid: self.u32()? }
            }
            b'C' => {
                let _flags = self.u8()?;
                let _commit_lsn = self.u64()?;
                let end_lsn = self.u64()?;
                let ts = self.i64()?;
                Message::Commit {
                    end_lsn,
                    ts_ms: (ts + POSTGRES_EPOCH_MICROS) / 1000,
                }
            }
            b'R' => Message::Relation(self.relation()?),
            b'I' => {
                let relation = self.u32()?;
                self.expect(b'N')?;
                Message::Insert {
                    relation,
                    new: self.tuple()?,
                }
            }
            b'U' => {
                let relation = self.u32()?;
                let old = match self.u8()? {
                    b'N' => None,
                    marker => {
                        let old = self.old_tuple(marker)?;
                        self.expect(b'N')?;
                        Some(old)
                    }
                };
                Message::Update {
                    relation,
                    old,
                    new: self.tuple()?,
                }
            }
            b'D' => {
                let relation = self.u32()?;
                let marker = self.u8()?;
                Message::Delete {
                    relation,
                    old: self.old_tuple(marker)?,
                }
            }
            b'Y' | b'O' | b'T' | b'M' => return Ok(Message::Other(kind)),
            _ => return Err("unknown message type".into()),
        })
    }

    fn relation(&mut self) -> Result<Relation, String> {
        let id = self.u32()?;
        let schema = self.string()?;
        let table = self.string()?;
        let _replica_identity = self.u8()?;
        let count = self.u16()?;
        let mut columns = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let flags = self.u8()?;
            let name = self.string()?;
            let type_oid = self.u32()?;
            let _type_modifier = self.u32()?;
            columns.push(Column {
                name,
                type_oid,
                key: flags & 1 == 1,
            });
        }
        Ok(Relation {
            id,
            // An empty namespace is pg_catalog's.
            schema: if schema.is_empty() {
                "pg_catalog".into()
            } else {
                schema
            },
            table,
            columns,
        })
    }

    fn old_tuple(&mut self, marker: u8) -> Result<OldTuple, String> {
        match marker {
            b'K' => Ok(OldTuple::Key(self.tuple()?)),
            b'O' => Ok(OldTuple::Full(self.tuple()?)),
            other => Err(format!("old tuple marker {:?}", char::from(other))),
        }
    }

    fn tuple(&mut self) -> Result<Tuple, String> {
        let count = self.u16()?;
        (0..count)
            .map(|_| match self.u8()? {
                b'n' => Ok(Cell::Null),
                b'u' => Ok(Cell::Unchanged),
                b't' => {
                    let len = self.u32()? as usize;
                    let text = self.take(len)?;
                    String::from_utf8(text.to_vec())
                        .map(Cell::Text)
                        .map_err(|_| "a column's text is not UTF-8".to_string())
                }
                other => Err(format!("column kind {:?}", char::from(other))),
            })
            .collect()
    }

    fn expect(&mut self, marker: u8) -> Result<(), String> {
        match self.u8()? {
            m if m == marker => Ok(()),
            m => Err(format!(
                "expected {:?}, found {:?}",
                char::from(marker),
                char::from(m)
            )),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err("truncated".into());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// A NUL-terminated string.
    fn string(&mut self) -> Result<String, String> {
        let end = self
            .bytes
            .iter()
            .position(|&b| b == 0)
            .ok_or("a string without its terminator")?;
        let text = String::from_utf8(self.bytes[..end].to_vec())
            .map_err(|_| "a name is not UTF-8".to_string())?;
        self.bytes = &self.bytes[end + 1..];
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds message bytes as PostgreSQL writes them.
    #[derive(Default)]
    struct Bytes(Vec<u8>);

    impl Bytes {
        fn u8(mut self, v: u8) -> Self {
            self.0.push(v);
            self
        }
        fn u16(mut self, v: u16) -> Self {
            self.0.extend(v.to_be_bytes());
            self
        }
        fn u32(mut self, v: u32) -> Self {
            self.0.extend(v.to_be_bytes());
            self
        }
        fn u64(mut self, v: u64) -> Self {
            self.0.extend(v.to_be_bytes());
            self
        }
        fn string(mut self, s: &str) -> Self {
            self.0.extend(s.as_bytes());
            self.0.push(0);
            self
        }
        fn text(self, s: &str) -> Self {
            let mut b = self.u8(b't').u32(s.len() as u32);
            b.0.extend(s.as_bytes());
            b
        }
    }

    #[test]
    fn begin_and_commit() {
        let begin = Bytes::default().u8(b'B').u64(0x10).u64(5).u32(731);
        assert_eq!(decode(&begin.0), Ok(Message::Begin { xid: 731 }));
        // One second after PostgreSQL's epoch.
        let commit = Bytes::default()
            .u8(b'C')
            .u8(0)
            .u64(0x16B_3748)
            .u64(0x16B_3790)
            .u64(1_000_000);
        assert_eq!(
            decode(&commit.0),
            Ok(Message::Commit {
                end_lsn: 0x16B_3790,
                ts_ms: 946_684_801_000
            })
        );
    }

    #[test]
    fn relations_name_their_columns_and_key() {
        let relation = Bytes::default()
            .u8(b'R')
            .u32(16385)
            .string("public")
            .string("orders")
            .u8(b'd')
            .u16(2)
            .u8(1)
            .string("id")
            .u32(23)
            .u32(u32::MAX)
            .u8(0)
            .string("note")
            .u32(25)
            .u32(u32::MAX);
        let Ok(Message::Relation(r)) = decode(&relation.0) else {
            panic!("not a relation");
        };
        assert_eq!(
            (r.id, r.schema.as_str(), r.table.as_str()),
            (16385, "public", "orders")
        );
        assert_eq!(
            r.columns,
            [
                Column {
                    name: "id".into(),
                    type_oid: 23,
                    key: true
                },
                Column {
                    name: "note".into(),
                    type_oid: 25,
                    key: false
                }
            ]
        );
    }

    #[test]
    fn changes_carry_their_tuples() {
        let insert = Bytes::default()
            .u8(b'I')
            .u32(7)
            .u8(b'N')
            .u16(3)
            .text("1")
            .u8(b'n')
            .u8(b'u');
        assert_eq!(
            decode(&insert.0),
            Ok(Message::Insert {
                relation: 7,
                new: vec![Cell::Text("1".into()), Cell::Null, Cell::Unchanged]
            })
        );
        let update = Bytes::default()
            .u8(b'U')
            .u32(7)
            .u8(b'O')
            .u16(1)
            .text("a")
            .u8(b'N')
            .u16(1)
            .text("b");
        assert_eq!(
            decode(&update.0),
            Ok(Message::Update {
                relation: 7,
                old: Some(OldTuple::Full(vec![Cell::Text("a".into())])),
                new: vec![Cell::Text("b".into())]
            })
        );
        let update = Bytes::default().u8(b'U').u32(7).u8(b'N').u16(1).text("c");
        assert!(matches!(
            decode(&update.0),
            Ok(Message::Update { old: None, .. })
        ));
        let delete = Bytes::default().u8(b'D').u32(7).u8(b'K').u16(1).text("9");
        assert_eq!(
            decode(&delete.0),
            Ok(Message::Delete {
                relation: 7,
                old: OldTuple::Key(vec![Cell::Text("9".into())])
            })
        );
    }

    #[test]
    fn bad_bytes_are_errors() {
        assert!(decode(b"").is_err());
        assert!(decode(b"Z").unwrap_err().to_string().contains("unknown"));
        assert!(decode(b"B\0\0")
            .unwrap_err()
            .to_string()
            .contains("truncated"));
        let bad_marker = Bytes::default().u8(b'D').u32(7).u8(b'X').u16(0);
        assert!(decode(&bad_marker.0).is_err());
        let unterminated = Bytes::default().u8(b'R').u32(1).u8(b'p');
        assert!(decode(&unterminated.0)
            .unwrap_err()
            .to_string()
            .contains("terminator"));
        assert_eq!(decode(b"Yanything"), Ok(Message::Other(b'Y')));
    }
}
