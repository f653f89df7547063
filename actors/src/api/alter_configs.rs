//! AlterConfigs (replace a resource's configs) and IncrementalAlterConfigs
//! (set, delete, append to or subtract from single keys), of a topic (its
//! overrides, `Broker::set_topic_configs`) or of a broker or the cluster
//! default (dynamic broker configs, `Broker::alter_broker_configs`).

use crate::broker::Broker;
use crate::dynamic_config;
use crate::protocol::resource_type::{BROKER, TOPIC};
use crate::security::{Access, Operation};
use crate::topic::{self, config::ConfigType};
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::incremental_alter_configs_response as incremental;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

type Outcome = Result<(), (ResponseError, String)>;

pub async fn handle(
    broker: &Broker,
    access: &Access,
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for resource in req.resources {
        let configs = resource
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.to_string(), v.to_string()))
            })
            .collect();
        let response: AlterConfigsResourceResponse = alter(
            broker,
            access,
            resource.resource_type,
            resource.resource_name,
            req.validate_only,
            |_| Ok(configs),
        )
        .await;
        responses.push(response);
    }
    AlterConfigsResponse::default().with_responses(responses)
}

pub async fn handle_incremental(
    broker: &Broker,
    access: &Access,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for resource in req.resources {
        let ops: Vec<(String, i8, Option<String>)> = resource
            .configs
            .iter()
            .map(|c| {
                (
                    c.name.to_string(),
                    c.config_operation,
                    c.value.as_ref().map(|v| v.to_string()),
                )
            })
            .collect();
        let response: incremental::AlterConfigsResourceResponse = alter(
            broker,
            access,
            resource.resource_type,
            resource.resource_name,
            req.validate_only,
            |current| {
                let settings = broker.settings();
                let mut configs = current.clone();
                for (name, op, value) in &ops {
                    // Only APPEND and SUBTRACT start from the value in force.
                    let default = match (resource.resource_type, *op) {
                        (_, OP_SET | OP_DELETE) => None,
                        (BROKER, _) => {
                            broker_list_check(name, *op)?;
                            settings.topic_default(&broker_synonym_of(broker, name)?)
                        }
                        _ => settings.topic_default(name),
                    };
                    edit(&mut configs, name, *op, value.as_deref(), default)?;
                }
                Ok(configs)
            },
        )
        .await;
        responses.push(response);
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// A resource's answer, which the two APIs give under two type names.
trait ResourceResponse {
    fn answer(resource_type: i8, name: StrBytes, outcome: Outcome) -> Self;
}

macro_rules! resource_response {
    ($($response:ty),*) => {$(
        impl ResourceResponse for $response {
            fn answer(resource_type: i8, name: StrBytes, outcome: Outcome) -> Self {
                let (code, message) = match outcome {
                    Ok(()) => (0, None),
                    Err((code, message)) => (code.code(), Some(StrBytes::from_string(message))),
                };
                Self::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(name)
                    .with_error_code(code)
                    .with_error_message(message)
            }
        }
    )*};
}

resource_response!(
    AlterConfigsResourceResponse,
    incremental::AlterConfigsResourceResponse
);

/// Alters one resource's configs with `change` and answers for it.
async fn alter<R: ResourceResponse>(
    broker: &Broker,
    access: &Access,
    resource_type: i8,
    name: StrBytes,
    validate_only: bool,
    change: impl FnOnce(
        &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, (ResponseError, String)>,
) -> R {
    let allowed = super::config_access(access, Operation::AlterConfigs, resource_type, &name);
    let outcome = match allowed {
        Ok(()) => apply(broker, resource_type, &name, validate_only, change).await,
        Err(error) => Err((error, "not authorized".to_string())),
    };
    R::answer(resource_type, name, outcome)
}

/// Computes a resource's new configs from its current ones and stores them.
async fn apply(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(
        &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, (ResponseError, String)>,
) -> Outcome {
    match resource_type {
        TOPIC => {
            let topic = broker.topic(name).ok_or((
                ResponseError::UnknownTopicOrPartition,
                format!("topic '{name}' does not exist"),
            ))?;
            let configs = change(&topic.configs)?;
            broker
                .set_topic_configs(name, configs, validate_only)
                .await
                .map_err(|e| (e.code, e.message))
        }
        BROKER => {
            let id = broker_resource(broker, name)?;
            let configs = change(&broker.dynamic_configs().of(id))?;
            let known =
                super::describe_configs::broker_configs(broker.config(), broker.listeners());
            let unknown: Vec<&str> = configs
                .keys()
                .filter(|k| !known.iter().any(|(n, _, _)| n == k))
                .map(String::as_str)
                .collect();
            if !unknown.is_empty() {
                return Err((
                    ResponseError::InvalidConfig,
                    format!("unknown broker configs: {}", unknown.join(", ")),
                ));
            }
            broker
                .alter_broker_configs(id, configs, validate_only)
                .await
                .map_err(|e| (e.code, e.message))
        }
        other => Err((
            ResponseError::InvalidRequest,
            format!("only topic and broker configs can be altered, not resource type {other}"),
        )),
    }
}

/// The broker a BROKER resource names: `None` for the cluster default (the
/// empty name), else this broker's id or, in a cluster, a registered one's.
pub(super) fn broker_resource(
    broker: &Broker,
    name: &str,
) -> Result<Option<i32>, (ResponseError, String)> {
    if name.is_empty() {
        return Ok(None);
    }
    let own = broker.config().node_id;
    let registered = |id: i32| {
        id == own
            || broker
                .cluster()
                .is_some_and(|node| node.image().borrow().brokers.contains_key(&id))
    };
    match name.parse::<i32>() {
        Ok(id) if registered(id) => Ok(Some(id)),
        _ => Err((
            ResponseError::InvalidRequest,
            format!("Unexpected broker id, expected {own} or empty string, but received {name}"),
        )),
    }
}

/// The topic config a dynamic broker config is the synonym of, whose
/// value in force APPEND and SUBTRACT start from.
fn broker_synonym_of(broker: &Broker, name: &str) -> Result<String, (ResponseError, String)> {
    topic::config::keys(broker.config())
        .into_iter()
        .find(|k| k.broker_name == name && dynamic_config::is_dynamic(name))
        .map(|k| k.name.to_string())
        .ok_or_else(|| {
            (
                ResponseError::InvalidRequest,
                format!("Cannot update these configs dynamically: {name}"),
            )
        })
}

/// APPEND and SUBTRACT are for list configs only, as in Kafka.
fn broker_list_check(name: &str, op: i8) -> Result<(), (ResponseError, String)> {
    let is_list = |name: &str| {
        topic::config::keys(&crate::config::BrokerConfig::default())
            .iter()
            .any(|k| k.broker_name == name && k.kind == ConfigType::List)
    };
    if (op == OP_APPEND || op == OP_SUBTRACT) && !is_list(name) {
        return Err((
            ResponseError::InvalidRequest,
            format!("Config value append or subtract is not allowed for config key: {name}"),
        ));
    }
    Ok(())
}

/// One IncrementalAlterConfigs operation on a topic's overrides. APPEND
/// and SUBTRACT start from the value in force, the override or else the
/// `default`, as Kafka's do (appending `compact` to the default `delete`
/// gives `delete,compact`).
fn edit(
    configs: &mut BTreeMap<String, String>,
    name: &str,
    op: i8,
    value: Option<&str>,
    default: Option<String>,
) -> Result<(), (ResponseError, String)> {
    let invalid = |why: String| (ResponseError::InvalidConfig, why);
    match op {
        OP_SET => {
            let value = value.ok_or_else(|| invalid(format!("no value to set for '{name}'")))?;
            configs.insert(name.to_string(), value.to_string());
        }
        OP_DELETE => {
            configs.remove(name);
        }
        OP_APPEND | OP_SUBTRACT => {
            let value = value.ok_or_else(|| invalid(format!("no value for '{name}'")))?;
            let mut items: Vec<String> = configs
                .get(name)
                .cloned()
                .or(default)
                .map(|v| {
                    v.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            for item in value.split(',').filter(|s| !s.is_empty()) {
                if op == OP_APPEND {
                    if !items.iter().any(|i| i == item) {
                        items.push(item.to_string());
                    }
                } else {
                    items.retain(|i| i != item);
                }
            }
            configs.insert(name.to_string(), items.join(","));
        }
        other => return Err(invalid(format!("unknown config operation {other}"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_operations() {
        let mut configs = BTreeMap::new();
        let policy = "cleanup.policy";
        let default = || Some("delete".to_string());
        edit(&mut configs, policy, OP_APPEND, Some("compact"), default()).unwrap();
        assert_eq!(configs[policy], "delete,compact");
        edit(&mut configs, policy, OP_SUBTRACT, Some("delete"), default()).unwrap();
        assert_eq!(configs[policy], "compact");
        edit(&mut configs, policy, OP_DELETE, None, default()).unwrap();
        assert!(configs.is_empty());
        edit(&mut configs, policy, OP_SUBTRACT, Some("delete"), default()).unwrap();
        assert_eq!(configs[policy], "");
        edit(&mut configs, policy, OP_SET, Some("delete"), default()).unwrap();
        assert_eq!(configs[policy], "delete");
        assert!(edit(&mut configs, "x", 9, None, None).is_err());
        assert!(edit(&mut configs, "x", OP_SET, None, None).is_err());
    }
}
