//! Loading `config.yaml`: the embedded default, or a file, then command-line
//! overrides. Errors name the key and what is allowed.

use actorlog_actors::BrokerConfig;
use std::path::Path;

/// The repository's `config.yaml`, built into the binary.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("../config.yaml");

/// Parses a YAML document into a validated config.
pub fn parse(yaml: &str, origin: &str) -> Result<BrokerConfig, String> {
    let config: BrokerConfig = match serde_yaml_ng::from_str(yaml) {
        Ok(config) => config,
        // An empty file means "all defaults".
        Err(_) if yaml.trim().is_empty() => BrokerConfig::default(),
        Err(e) => return Err(format!("{origin}: {e}")),
    };
    config.validate().map_err(|e| format!("{origin}: {e}"))?;
    Ok(config)
}

/// Loads `path`, or the embedded default when `None`.
pub fn load(path: Option<&Path>) -> Result<BrokerConfig, String> {
    match path {
        None => parse(DEFAULT_CONFIG_YAML, "embedded config.yaml"),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            parse(&text, &path.display().to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_matches_code_defaults() {
        assert_eq!(load(None).unwrap(), BrokerConfig::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse("listen: 127.0.0.1:1\nnum_partiton: 3\n", "test").unwrap_err();
        assert!(err.contains("num_partiton"), "{err}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err = parse("num_partitions: -3\n", "test").unwrap_err();
        assert!(err.contains("num_partitions"), "{err}");
        let err = parse("listen: nope\n", "test").unwrap_err();
        assert!(err.contains("listen"), "{err}");
    }

    #[test]
    fn the_security_example_is_valid() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/security/broker.yaml");
        let config = load(Some(&example)).unwrap();
        assert_eq!(config.validate(), Ok(()));
        let listeners = config.listeners().unwrap();
        assert_eq!(listeners.len(), 2);
        assert!(listeners[1].protocol.sasl() && listeners[1].protocol.tls());
    }

    #[test]
    fn cluster_examples_are_one_cluster() {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cluster");
        let configs: Vec<BrokerConfig> = (1..=3)
            .map(|i| load(Some(&examples.join(format!("broker{i}.yaml")))).unwrap())
            .collect();
        let first = configs[0].cluster.as_ref().expect("a cluster section");
        for (config, node_id) in configs.iter().zip(1..) {
            assert_eq!(config.node_id, node_id);
            let cluster = config.cluster.as_ref().expect("a cluster section");
            assert_eq!(cluster.cluster_id, first.cluster_id);
            assert_eq!(cluster.voters, first.voters);
        }
        let mut data_dirs: Vec<_> = configs.iter().map(|c| &c.data_dir).collect();
        data_dirs.dedup();
        assert_eq!(data_dirs.len(), 3, "each broker has its own data dir");
    }

    #[test]
    fn impossible_value_is_named() {
        let err = parse("segment_bytes: 10\n", "test").unwrap_err();
        assert!(err.contains("segment_bytes"), "{err}");
    }
}
