//! Single message transforms, as Kafka Connect's InsertField$Value,
//! ReplaceField$Value, ValueToKey, ExtractField, a router by a field's
//! value and Filter. Each is configured by one YAML map with its `type`,
//! works on JSON structs and passes tombstones (null values) through.

use crate::data::{ConnectRecord, Data};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Transform {
    /// Adds a field with a fixed value to the value struct.
    InsertField {
        #[serde(rename = "static.field")]
        field: String,
        #[serde(rename = "static.value")]
        value: Value,
    },
    /// Renames fields (`old: new`) and drops the fields in `exclude`.
    ReplaceField {
        #[serde(default)]
        renames: BTreeMap<String, String>,
        #[serde(default)]
        exclude: Vec<String>,
    },
    /// Makes the key a struct of these fields of the value.
    ValueToKey { fields: Vec<String> },
    /// Replaces the key (or the value) by one of its fields.
    ExtractField {
        field: String,
        #[serde(default)]
        from: Side,
    },
    /// Sends the record to the topic `topic.format` names, where
    /// `${field}` is the value's field and `${topic}` the record's topic.
    RouteByField {
        field: String,
        #[serde(rename = "topic.format", default = "just_the_field")]
        topic_format: String,
    },
    /// Drops the records whose value field `field` equals `equals` (with
    /// `negate: true`, keeps only those).
    Filter {
        field: String,
        equals: Value,
        #[serde(default)]
        negate: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    #[default]
    Key,
    Value,
}

fn just_the_field() -> String {
    "${field}".to_string()
}

impl Transform {
    /// The name the dead-letter headers give as the failing class.
    pub fn name(&self) -> &'static str {
        match self {
            Transform::InsertField { .. } => "insert-field",
            Transform::ReplaceField { .. } => "replace-field",
            Transform::ValueToKey { .. } => "value-to-key",
            Transform::ExtractField { .. } => "extract-field",
            Transform::RouteByField { .. } => "route-by-field",
            Transform::Filter { .. } => "filter",
        }
    }

    /// The transformed record, `None` if a filter dropped it, or why it
    /// cannot be transformed.
    pub fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, String> {
        match self {
            Transform::InsertField { field, value } => {
                if let Some(fields) = value_struct(&mut record.value, self)? {
                    fields.insert(field.clone(), value.clone());
                }
            }
            Transform::ReplaceField { renames, exclude } => {
                if let Some(fields) = value_struct(&mut record.value, self)? {
                    for name in exclude {
                        fields.remove(name);
                    }
                    for (from, to) in renames {
                        if let Some(v) = fields.remove(from) {
                            fields.insert(to.clone(), v);
                        }
                    }
                }
            }
            Transform::ValueToKey { fields } => {
                if let Some(value) = value_struct(&mut record.value, self)? {
                    let mut key = Map::new();
                    for name in fields {
                        let v = value.get(name).ok_or_else(|| {
                            format!("value-to-key: the value has no field {name:?}")
                        })?;
                        key.insert(name.clone(), v.clone());
                    }
                    record.key = Data::Json(Value::Object(key));
                }
            }
            Transform::ExtractField { field, from } => {
                let target = match from {
                    Side::Key => &mut record.key,
                    Side::Value => &mut record.value,
                };
                if !target.is_null() {
                    let Data::Json(Value::Object(fields)) = target else {
                        return Err(format!(
                            "extract-field needs a struct, the record has {}",
                            target.kind()
                        ));
                    };
                    *target = Data::Json(fields.remove(field).unwrap_or(Value::Null));
                }
            }
            Transform::RouteByField {
                field,
                topic_format,
            } => {
                let Some(fields) = value_struct(&mut record.value, self)? else {
                    return Ok(Some(record));
                };
                let name = match fields.get(field) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    Some(Value::Bool(b)) => b.to_string(),
                    _ => {
                        return Err(format!(
                            "route-by-field: the value has no string or number field {field:?}"
                        ))
                    }
                };
                record.topic = topic_format
                    .replace("${topic}", &record.topic)
                    .replace("${field}", &name);
            }
            Transform::Filter {
                field,
                equals,
                negate,
            } => {
                let matches = match &record.value {
                    Data::Json(Value::Object(fields)) => fields.get(field) == Some(equals),
                    _ => false,
                };
                if matches != *negate {
                    return Ok(None);
                }
            }
        }
        Ok(Some(record))
    }
}

/// The fields of a struct value; `None` for a tombstone, which transforms
/// pass through as Kafka Connect's do.
fn value_struct<'a>(
    value: &'a mut Data,
    transform: &Transform,
) -> Result<Option<&'a mut Map<String, Value>>, String> {
    match value {
        Data::Json(Value::Null) => Ok(None),
        Data::Json(Value::Object(fields)) => Ok(Some(fields)),
        other => Err(format!(
            "{} needs a struct value, the record has {} (use the json converter)",
            transform.name(),
            other.kind()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(value: Value) -> ConnectRecord {
        ConnectRecord {
            topic: "orders".into(),
            key: Data::NULL,
            value: Data::Json(value),
        }
    }

    fn parse(yaml: &str) -> Transform {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn insert_field_adds_a_static_value() {
        let t = parse("type: insert-field\nstatic.field: source\nstatic.value: shop-1");
        let out = t.apply(record(json!({"id": 1}))).unwrap().unwrap();
        assert_eq!(out.value, Data::Json(json!({"id": 1, "source": "shop-1"})));
        assert!(t
            .apply(record(json!("a line")))
            .unwrap_err()
            .contains("struct"));
        let tombstone = t.apply(record(Value::Null)).unwrap().unwrap();
        assert!(tombstone.value.is_null());
    }

    #[test]
    fn replace_field_renames_and_drops() {
        let t = parse("type: replace-field\nrenames: {id: order_id}\nexclude: [secret]");
        let out = t
            .apply(record(json!({"id": 1, "secret": "x", "n": 2})))
            .unwrap()
            .unwrap();
        assert_eq!(out.value, Data::Json(json!({"order_id": 1, "n": 2})));
    }

    #[test]
    fn value_to_key_then_extract_field_makes_a_plain_key() {
        let to_key = parse("type: value-to-key\nfields: [id]");
        let extract = parse("type: extract-field\nfield: id");
        let keyed = to_key
            .apply(record(json!({"id": 9, "n": 2})))
            .unwrap()
            .unwrap();
        assert_eq!(keyed.key, Data::Json(json!({"id": 9})));
        let plain = extract.apply(keyed).unwrap().unwrap();
        assert_eq!(plain.key, Data::Json(json!(9)));
        assert!(to_key
            .apply(record(json!({"n": 2})))
            .unwrap_err()
            .contains("\"id\""));

        let from_value = parse("type: extract-field\nfield: n\nfrom: value");
        let out = from_value.apply(record(json!({"n": 2}))).unwrap().unwrap();
        assert_eq!(out.value, Data::Json(json!(2)));
    }

    #[test]
    fn route_by_field_names_the_topic() {
        let t = parse("type: route-by-field\nfield: region\ntopic.format: ${topic}-${field}");
        let out = t.apply(record(json!({"region": "eu"}))).unwrap().unwrap();
        assert_eq!(out.topic, "orders-eu");
        assert!(t.apply(record(json!({"other": 1}))).is_err());
        let plain = parse("type: route-by-field\nfield: region");
        assert_eq!(
            plain
                .apply(record(json!({"region": 7})))
                .unwrap()
                .unwrap()
                .topic,
            "7"
        );
    }

    #[test]
    fn filter_drops_matches_or_keeps_only_them() {
        let drop = parse("type: filter\nfield: status\nequals: cancelled");
        assert_eq!(drop.apply(record(json!({"status": "cancelled"}))), Ok(None));
        assert!(drop
            .apply(record(json!({"status": "paid"})))
            .unwrap()
            .is_some());
        assert!(drop.apply(record(json!("text"))).unwrap().is_some());
        let keep = parse("type: filter\nfield: status\nequals: paid\nnegate: true");
        assert!(keep
            .apply(record(json!({"status": "paid"})))
            .unwrap()
            .is_some());
        assert_eq!(keep.apply(record(json!({"status": "new"}))), Ok(None));
    }

    #[test]
    fn unknown_keys_and_types_are_refused() {
        let e = serde_yaml_ng::from_str::<Transform>("type: insert-field\nstatic.feld: a")
            .unwrap_err()
            .to_string();
        assert!(e.contains("static.feld"), "{e}");
        let e = serde_yaml_ng::from_str::<Transform>("type: mask-field")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mask-field"), "{e}");
    }
}
