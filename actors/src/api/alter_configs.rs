//! AlterConfigs (replace a topic's overrides) and IncrementalAlterConfigs
//! (set, delete, append to or subtract from single keys). Both end in
//! `Broker::set_topic_configs`; only topics are alterable here.

use crate::broker::Broker;
use crate::protocol::resource_type::TOPIC;
use crate::security::{Access, Operation};
use crate::topic;
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
                let mut configs = current.clone();
                for (name, op, value) in &ops {
                    let default = topic::config::effective(broker.config(), &BTreeMap::new(), name);
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

/// Computes a topic's new overrides from its current ones and stores them.
async fn apply(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(
        &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, (ResponseError, String)>,
) -> Outcome {
    if resource_type != TOPIC {
        return Err((
            ResponseError::InvalidRequest,
            format!("only topic configs can be altered, not resource type {resource_type}"),
        ));
    }
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
