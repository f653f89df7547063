//! The connect config file: the broker, the worker's REST address and
//! offsets topic, and the connectors. Keys follow Kafka Connect's names
//! (`key.converter`, `errors.tolerance`, ...) where Kafka has one.

use crate::converter::Converter;
use crate::error::ConnectError;
use crate::transform::Transform;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default compacted topic of source positions.
pub const DEFAULT_OFFSETS_TOPIC: &str = "__actorlog_connect_offsets";

/// The default group of workers sharing the source tasks.
pub const DEFAULT_GROUP: &str = "connect-cluster";

#[derive(Debug, Clone)]
pub struct ConnectConfig {
    pub bootstrap_servers: String,
    pub offsets_topic: String,
    /// Kafka Connect's `group.id`: the workers of one group share the
    /// source tasks of the same config.
    pub group: String,
    pub rest_listen: SocketAddr,
    /// librdkafka settings for every client (security, timeouts), applied
    /// last.
    pub client: BTreeMap<String, String>,
    pub connectors: Vec<ConnectorConfig>,
}

#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    pub name: String,
    pub kind: ConnectorKind,
    pub key_converter: Converter,
    pub value_converter: Converter,
    pub transforms: Vec<Transform>,
    pub errors: ErrorPolicy,
}

#[derive(Debug, Clone)]
pub enum ConnectorKind {
    FileSource {
        file: PathBuf,
        topic: String,
        batch_size: usize,
        poll_interval: Duration,
    },
    FileSink {
        file: PathBuf,
        topics: Vec<String>,
    },
    PostgresSink {
        topics: Vec<String>,
        /// tokio-postgres' connection string (`host=... user=...` or a
        /// `postgresql://` URL).
        url: String,
        /// The table, where `${topic}` is the record's topic.
        table_format: String,
        pk_fields: Vec<String>,
        upsert: bool,
    },
    PostgresCdcSource(Box<CdcSource>),
}

/// A PostgreSQL change-data-capture source: the tables' rows, then their
/// changes through a logical replication slot.
#[derive(Debug, Clone)]
pub struct CdcSource {
    pub database: tokio_postgres::Config,
    /// `(schema, table)`, in the order given.
    pub tables: Vec<(String, String)>,
    pub slot: String,
    pub publication: String,
    /// Create the publication for the tables if it does not exist.
    pub publication_autocreate: bool,
    pub topic_prefix: String,
    /// Changes read from the slot per round at most (whole transactions
    /// are kept together).
    pub batch_size: usize,
    pub poll_interval: Duration,
}

impl ConnectorKind {
    /// Kafka Connect's `type` in the status answer.
    pub fn role(&self) -> &'static str {
        match self {
            ConnectorKind::FileSource { .. } | ConnectorKind::PostgresCdcSource(_) => "source",
            ConnectorKind::FileSink { .. } | ConnectorKind::PostgresSink { .. } => "sink",
        }
    }
}

/// What a record that cannot be converted, transformed or written does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPolicy {
    /// `errors.tolerance: all`: skip it (and dead-letter it if a topic is
    /// set) instead of failing the task.
    pub tolerate: bool,
    pub dead_letter_topic: Option<String>,
}

impl ConnectConfig {
    pub fn load(path: &Path) -> Result<Self, ConnectError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConnectError::Config(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| ConnectError::Config(format!("{}: {e}", path.display())))
    }

    /// Parses and checks a config; the error names the offending key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: RawConfig = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        let mut names = BTreeSet::new();
        let mut connectors = Vec::new();
        for (i, c) in raw.connectors.into_iter().enumerate() {
            let at = format!("connectors[{i}]");
            if c.name.is_empty() || c.name.contains('/') {
                return Err(format!("{at}.name: a connector needs a name without '/'"));
            }
            if !names.insert(c.name.clone()) {
                return Err(format!("{at}.name: {:?} names two connectors", c.name));
            }
            let at = format!("connectors[{i}] ({})", c.name);
            connectors.push(c.check(&at)?);
        }
        if connectors.is_empty() {
            return Err("connectors: the file names no connector".into());
        }
        if raw.offsets_topic.is_empty() {
            return Err("offset.storage.topic: empty".into());
        }
        if raw.group.is_empty() {
            return Err("group.id: empty".into());
        }
        Ok(ConnectConfig {
            bootstrap_servers: raw.bootstrap_servers,
            offsets_topic: raw.offsets_topic,
            group: raw.group,
            rest_listen: raw.rest_listen,
            client: raw.client,
            connectors,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(rename = "bootstrap.servers", default = "default_bootstrap")]
    bootstrap_servers: String,
    #[serde(rename = "offset.storage.topic", default = "default_offsets_topic")]
    offsets_topic: String,
    #[serde(rename = "group.id", default = "default_group")]
    group: String,
    #[serde(rename = "rest.listen", default = "default_rest")]
    rest_listen: SocketAddr,
    #[serde(default)]
    client: BTreeMap<String, String>,
    #[serde(default)]
    connectors: Vec<RawConnector>,
}

fn default_bootstrap() -> String {
    "127.0.0.1:9092".into()
}

fn default_offsets_topic() -> String {
    DEFAULT_OFFSETS_TOPIC.into()
}

fn default_group() -> String {
    DEFAULT_GROUP.into()
}

fn default_rest() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8083))
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Type {
    FileSource,
    FileSink,
    PostgresSink,
    PostgresCdcSource,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum InsertMode {
    Insert,
    Upsert,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum ConverterName {
    Bytes,
    String,
    Json,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Tolerance {
    None,
    All,
}

/// One connector as written: every key any type takes, checked against
/// its type by [`RawConnector::check`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnector {
    name: String,
    #[serde(rename = "type")]
    kind: Type,
    topic: Option<String>,
    topics: Option<Vec<String>>,
    file: Option<PathBuf>,
    #[serde(rename = "batch.size")]
    batch_size: Option<usize>,
    #[serde(rename = "poll.interval.ms")]
    poll_interval_ms: Option<u64>,
    #[serde(rename = "key.converter")]
    key_converter: Option<ConverterName>,
    #[serde(rename = "key.converter.schemas.enable")]
    key_schemas: Option<bool>,
    #[serde(rename = "value.converter")]
    value_converter: Option<ConverterName>,
    #[serde(rename = "value.converter.schemas.enable")]
    value_schemas: Option<bool>,
    #[serde(default)]
    transforms: Vec<Transform>,
    #[serde(rename = "errors.tolerance")]
    tolerance: Option<Tolerance>,
    #[serde(rename = "errors.deadletterqueue.topic.name")]
    dead_letter_topic: Option<String>,
    #[serde(rename = "connection.url")]
    connection_url: Option<String>,
    #[serde(rename = "table.name.format")]
    table_format: Option<String>,
    #[serde(rename = "insert.mode")]
    insert_mode: Option<InsertMode>,
    #[serde(rename = "pk.fields")]
    pk_fields: Option<Vec<String>>,
    #[serde(rename = "database.hostname")]
    database_hostname: Option<String>,
    #[serde(rename = "database.port")]
    database_port: Option<u16>,
    #[serde(rename = "database.user")]
    database_user: Option<String>,
    #[serde(rename = "database.password")]
    database_password: Option<String>,
    #[serde(rename = "database.dbname")]
    database_dbname: Option<String>,
    #[serde(rename = "table.include.list")]
    table_include_list: Option<Vec<String>>,
    #[serde(rename = "slot.name")]
    slot_name: Option<String>,
    #[serde(rename = "publication.name")]
    publication_name: Option<String>,
    #[serde(rename = "publication.autocreate")]
    publication_autocreate: Option<bool>,
    #[serde(rename = "topic.prefix")]
    topic_prefix: Option<String>,
}

/// The keys only a postgres-cdc-source takes.
const CDC_KEYS: [&str; 10] = [
    "database.hostname",
    "database.port",
    "database.user",
    "database.password",
    "database.dbname",
    "table.include.list",
    "slot.name",
    "publication.name",
    "publication.autocreate",
    "topic.prefix",
];

impl RawConnector {
    /// Refuses the keys that belong to other connector types.
    fn refuse(&self, at: &str, kind: &str, keys: &[&str]) -> Result<(), String> {
        let set = [
            ("topic", self.topic.is_some()),
            ("topics", self.topics.is_some()),
            ("file", self.file.is_some()),
            ("batch.size", self.batch_size.is_some()),
            ("poll.interval.ms", self.poll_interval_ms.is_some()),
            ("connection.url", self.connection_url.is_some()),
            ("table.name.format", self.table_format.is_some()),
            ("insert.mode", self.insert_mode.is_some()),
            ("pk.fields", self.pk_fields.is_some()),
            ("database.hostname", self.database_hostname.is_some()),
            ("database.port", self.database_port.is_some()),
            ("database.user", self.database_user.is_some()),
            ("database.password", self.database_password.is_some()),
            ("database.dbname", self.database_dbname.is_some()),
            ("table.include.list", self.table_include_list.is_some()),
            ("slot.name", self.slot_name.is_some()),
            ("publication.name", self.publication_name.is_some()),
            (
                "publication.autocreate",
                self.publication_autocreate.is_some(),
            ),
            ("topic.prefix", self.topic_prefix.is_some()),
        ];
        match set.iter().find(|(key, on)| *on && keys.contains(key)) {
            Some((key, _)) => Err(format!("{at}.{key}: not a {kind} setting")),
            None => Ok(()),
        }
    }

    fn topics(&self, at: &str) -> Result<Vec<String>, String> {
        let topics = self.topics.clone().unwrap_or_default();
        if topics.is_empty() || topics.iter().any(String::is_empty) {
            return Err(format!("{at}.topics: a list of topic names is required"));
        }
        Ok(topics)
    }

    fn cdc_source(&self, at: &str) -> Result<CdcSource, String> {
        let required = |value: &Option<String>, key: &str| {
            value
                .clone()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{at}.{key}: required"))
        };
        let mut database = tokio_postgres::Config::new();
        database
            .host(self.database_hostname.as_deref().unwrap_or("127.0.0.1"))
            .port(self.database_port.unwrap_or(5432))
            .user(&required(&self.database_user, "database.user")?)
            .dbname(&required(&self.database_dbname, "database.dbname")?);
        if let Some(password) = &self.database_password {
            database.password(password);
        }
        let list = self.table_include_list.clone().unwrap_or_default();
        if list.is_empty() {
            return Err(format!(
                "{at}.table.include.list: a list of tables (schema.table) is required"
            ));
        }
        let tables = list
            .iter()
            .map(|name| match name.split_once('.') {
                None if !name.is_empty() => Ok(("public".to_string(), name.clone())),
                Some((schema, table))
                    if !schema.is_empty() && !table.is_empty() && !table.contains('.') =>
                {
                    Ok((schema.to_string(), table.to_string()))
                }
                _ => Err(format!(
                    "{at}.table.include.list: {name:?} is not a table name (schema.table)"
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let slot = self.slot_name.clone().unwrap_or_else(|| "actorlog".into());
        // PostgreSQL's own rule for slot names.
        if slot.is_empty()
            || !slot
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(format!(
                "{at}.slot.name: {slot:?}: lower-case letters, digits and underscores only"
            ));
        }
        let batch_size = self.batch_size.unwrap_or(2000);
        if batch_size == 0 {
            return Err(format!("{at}.batch.size: must be at least 1"));
        }
        Ok(CdcSource {
            database,
            tables,
            slot,
            publication: self
                .publication_name
                .clone()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "actorlog_publication".into()),
            publication_autocreate: self.publication_autocreate.unwrap_or(true),
            topic_prefix: required(&self.topic_prefix, "topic.prefix")?,
            batch_size,
            poll_interval: Duration::from_millis(self.poll_interval_ms.unwrap_or(500)),
        })
    }

    fn check(self, at: &str) -> Result<ConnectorConfig, String> {
        let file = || {
            self.file
                .clone()
                .ok_or_else(|| format!("{at}.file: required"))
        };
        let postgres_keys = [
            "connection.url",
            "table.name.format",
            "insert.mode",
            "pk.fields",
        ];
        let kind = match self.kind {
            Type::FileSource => {
                self.refuse(at, "file-source", &postgres_keys)?;
                self.refuse(at, "file-source", &CDC_KEYS)?;
                let file = file()?;
                if self.topics.is_some() {
                    return Err(format!("{at}.topics: a file-source writes one `topic`"));
                }
                let topic = self
                    .topic
                    .clone()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| format!("{at}.topic: required"))?;
                let batch_size = self.batch_size.unwrap_or(2000);
                if batch_size == 0 {
                    return Err(format!("{at}.batch.size: must be at least 1"));
                }
                ConnectorKind::FileSource {
                    file,
                    topic,
                    batch_size,
                    poll_interval: Duration::from_millis(self.poll_interval_ms.unwrap_or(1000)),
                }
            }
            Type::FileSink => {
                self.refuse(
                    at,
                    "file-sink",
                    &["topic", "batch.size", "poll.interval.ms"],
                )?;
                self.refuse(at, "file-sink", &postgres_keys)?;
                self.refuse(at, "file-sink", &CDC_KEYS)?;
                ConnectorKind::FileSink {
                    file: file()?,
                    topics: self.topics(at)?,
                }
            }
            Type::PostgresSink => {
                self.refuse(
                    at,
                    "postgres-sink",
                    &["topic", "file", "batch.size", "poll.interval.ms"],
                )?;
                self.refuse(at, "postgres-sink", &CDC_KEYS)?;
                let url = self
                    .connection_url
                    .clone()
                    .ok_or_else(|| format!("{at}.connection.url: required"))?;
                let upsert = self.insert_mode == Some(InsertMode::Upsert);
                let pk_fields = self.pk_fields.clone().unwrap_or_default();
                if upsert && pk_fields.is_empty() {
                    return Err(format!(
                        "{at}.pk.fields: insert.mode upsert needs the key's fields"
                    ));
                }
                ConnectorKind::PostgresSink {
                    topics: self.topics(at)?,
                    url,
                    table_format: self
                        .table_format
                        .clone()
                        .unwrap_or_else(|| "${topic}".into()),
                    pk_fields,
                    upsert,
                }
            }
            Type::PostgresCdcSource => {
                self.refuse(at, "postgres-cdc-source", &["topic", "topics", "file"])?;
                self.refuse(at, "postgres-cdc-source", &postgres_keys)?;
                ConnectorKind::PostgresCdcSource(Box::new(self.cdc_source(at)?))
            }
        };
        let tolerate = self.tolerance == Some(Tolerance::All);
        if self.dead_letter_topic.is_some() && !tolerate {
            return Err(format!(
                "{at}.errors.deadletterqueue.topic.name: needs errors.tolerance: all"
            ));
        }
        Ok(ConnectorConfig {
            name: self.name,
            kind,
            key_converter: converter(self.key_converter, self.key_schemas, &format!("{at}.key"))?,
            value_converter: converter(
                self.value_converter,
                self.value_schemas,
                &format!("{at}.value"),
            )?,
            transforms: self.transforms,
            errors: ErrorPolicy {
                tolerate,
                dead_letter_topic: self.dead_letter_topic.filter(|t| !t.is_empty()),
            },
        })
    }
}

/// Strings unless told otherwise: a file connector's lines are text.
fn converter(
    name: Option<ConverterName>,
    schemas: Option<bool>,
    at: &str,
) -> Result<Converter, String> {
    match (name.unwrap_or(ConverterName::String), schemas) {
        (ConverterName::Json, schemas) => Ok(Converter::Json {
            schemas_enable: schemas.unwrap_or(false),
        }),
        (_, Some(_)) => Err(format!(
            "{at}.converter.schemas.enable: only the json converter has schemas"
        )),
        (ConverterName::Bytes, None) => Ok(Converter::Bytes),
        (ConverterName::String, None) => Ok(Converter::String),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
bootstrap.servers: 127.0.0.1:9999
rest.listen: 127.0.0.1:18083
connectors:
  - name: lines-in
    type: file-source
    file: /tmp/in.txt
    topic: lines
    batch.size: 10
    value.converter: json
    value.converter.schemas.enable: true
    transforms:
      - type: filter
        field: status
        equals: skip
  - name: lines-out
    type: file-sink
    file: /tmp/out.txt
    topics: [lines]
    errors.tolerance: all
    errors.deadletterqueue.topic.name: dlq
"#;

    #[test]
    fn a_full_config_parses() {
        let c = ConnectConfig::parse(GOOD).unwrap();
        assert_eq!(c.bootstrap_servers, "127.0.0.1:9999");
        assert_eq!(c.offsets_topic, DEFAULT_OFFSETS_TOPIC);
        assert_eq!(c.rest_listen.port(), 18083);
        let source = &c.connectors[0];
        assert!(matches!(
            &source.kind,
            ConnectorKind::FileSource { topic, batch_size: 10, .. } if topic == "lines"
        ));
        assert_eq!(source.key_converter, Converter::String);
        assert_eq!(
            source.value_converter,
            Converter::Json {
                schemas_enable: true
            }
        );
        assert_eq!(source.transforms.len(), 1);
        assert!(!source.errors.tolerate);
        let sink = &c.connectors[1];
        assert!(sink.errors.tolerate);
        assert_eq!(sink.errors.dead_letter_topic.as_deref(), Some("dlq"));
    }

    #[test]
    fn a_cdc_source_defaults_to_the_public_schema_and_its_own_slot() {
        let c = ConnectConfig::parse(
            "connectors:\n  - {name: cdc, type: postgres-cdc-source, database.user: u, database.dbname: shop, topic.prefix: shop, table.include.list: [orders, sales.items]}\n",
        )
        .unwrap();
        let ConnectorKind::PostgresCdcSource(cdc) = &c.connectors[0].kind else {
            panic!("not a CDC source");
        };
        assert_eq!(
            cdc.tables,
            [
                ("public".to_string(), "orders".to_string()),
                ("sales".to_string(), "items".to_string())
            ]
        );
        assert_eq!(
            (cdc.slot.as_str(), cdc.publication.as_str()),
            ("actorlog", "actorlog_publication")
        );
        assert!(cdc.publication_autocreate);
        assert_eq!(cdc.database.get_ports(), [5432]);
        assert_eq!(c.connectors[0].kind.role(), "source");
    }

    fn error(yaml: &str) -> String {
        ConnectConfig::parse(yaml).unwrap_err()
    }

    #[test]
    fn errors_name_the_key() {
        let one = |body: &str| format!("connectors:\n  - name: a\n{body}");
        assert!(error(&one("    type: file-source\n    topic: t\n")).contains("file: required"));
        assert!(error(&one("    type: file-source\n    file: f\n")).contains("topic: required"));
        assert!(error(&one("    type: file-sink\n    file: f\n")).contains(".topics:"));
        let e = error(&one(
            "    type: file-sink\n    file: f\n    topics: [t]\n    topic: u\n",
        ));
        assert!(e.contains(".topic: not a file-sink setting"), "{e}");
        let e = error(&one("    type: jdbc-sink\n    file: f\n"));
        assert!(e.contains("jdbc-sink"), "{e}");
        let e = error(&one(
            "    type: file-source\n    file: f\n    topic: t\n    fiel: x\n",
        ));
        assert!(e.contains("fiel"), "{e}");
        let e = error(&one(
            "    type: file-source\n    file: f\n    topic: t\n    errors.tolerance: sometimes\n",
        ));
        assert!(e.contains("sometimes"), "{e}");
        let e = error(&one(
            "    type: file-source\n    file: f\n    topic: t\n    errors.deadletterqueue.topic.name: d\n",
        ));
        assert!(e.contains("needs errors.tolerance: all"), "{e}");
        let e = error(&one(
            "    type: file-source\n    file: f\n    topic: t\n    key.converter.schemas.enable: true\n",
        ));
        assert!(e.contains("key.converter.schemas.enable"), "{e}");
        let e = error(&one(
            "    type: file-source\n    file: f\n    topic: t\n    batch.size: 0\n",
        ));
        assert!(e.contains("batch.size"), "{e}");
        let e = error(&one("    type: postgres-sink\n    topics: [t]\n    insert.mode: upsert\n    connection.url: host=x\n"));
        assert!(e.contains("pk.fields"), "{e}");
        let e = error(&one("    type: postgres-sink\n    topics: [t]\n"));
        assert!(e.contains("connection.url: required"), "{e}");
        let e = error(&one(
            "    type: file-sink\n    file: f\n    topics: [t]\n    pk.fields: [id]\n",
        ));
        assert!(e.contains("pk.fields: not a file-sink setting"), "{e}");
        let cdc = "    type: postgres-cdc-source\n    database.user: u\n    database.dbname: d\n    topic.prefix: db\n";
        let e = error(&one(cdc));
        assert!(e.contains("table.include.list"), "{e}");
        let e = error(&one(&format!("{cdc}    table.include.list: [a.b.c]\n")));
        assert!(e.contains("\"a.b.c\" is not a table name"), "{e}");
        let e = error(&one(&format!(
            "{cdc}    table.include.list: [t]\n    slot.name: Bad-Slot\n"
        )));
        assert!(e.contains("slot.name"), "{e}");
        let e = error(&one(&format!(
            "{cdc}    table.include.list: [t]\n    topics: [x]\n"
        )));
        assert!(
            e.contains("topics: not a postgres-cdc-source setting"),
            "{e}"
        );
        let e = error(&one(
            "    type: file-source\n    file: f\n    topic: t\n    slot.name: s\n",
        ));
        assert!(e.contains("slot.name: not a file-source setting"), "{e}");
        let e = error(&one(
            "    type: postgres-cdc-source\n    database.dbname: d\n    topic.prefix: db\n    table.include.list: [t]\n",
        ));
        assert!(e.contains("database.user: required"), "{e}");
        assert!(error("connectors: []").contains("no connector"));
        let twice = "connectors:\n  - {name: a, type: file-sink, file: f, topics: [t]}\n  - {name: a, type: file-sink, file: g, topics: [t]}\n";
        assert!(error(twice).contains("names two connectors"));
        assert!(error("rest.listen: nowhere\nconnectors: []").contains("rest.listen"));
    }
}
