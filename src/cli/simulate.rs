//! `actorlog simulate`: plays a rebalance scenario and reports on it.

use crate::simulate::scenario::{AssignorName, GroupSettings, Protocol};
use crate::simulate::{self, Scenario};
use actorlog_actors::group::assignor::Assignor;
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct SimulateArgs {
    /// The scenario file (YAML; see examples/scenarios/).
    scenario: PathBuf,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also draw the run as an SVG swimlane chart into this file.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Play the same events with another scenario file's group settings and
    /// consumers (e.g. static members) and print both side by side.
    #[arg(long, conflicts_with = "compare_with")]
    compare: Option<PathBuf>,
    /// Play the same events with these group settings changed, e.g.
    /// `assignor=cooperative-sticky` or `protocol=classic,assignor=sticky`.
    #[arg(long)]
    compare_with: Option<String>,
}

pub fn run(args: SimulateArgs) -> Result<(), String> {
    let scenario = simulate::load(&args.scenario).map_err(|e| e.to_string())?;
    let report = simulate::run(&scenario)?;
    let other = match (&args.compare, &args.compare_with) {
        (Some(path), _) => Some(configured_as(&scenario, path)?),
        (None, Some(settings)) => Some(overridden(&scenario, settings)?),
        (None, None) => None,
    };
    match other {
        None => print!("{report}"),
        Some(other) => {
            let second = simulate::run(&other)?;
            print!(
                "A: {report}\nB: {second}\n{}",
                simulate::compare(&report, &second)
            );
        }
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        write(path, &(json + "\n"))?;
    }
    if let Some(path) = &args.svg {
        write(path, &simulate::svg::render(&report))?;
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The scenario's topics and events with the group settings and consumers
/// of another file.
fn configured_as(scenario: &Scenario, path: &Path) -> Result<Scenario, String> {
    let other = simulate::load(path).map_err(|e| e.to_string())?;
    Ok(Scenario {
        // The group id stays: in a cluster it decides which broker
        // coordinates the group, which the events' broker kills are about.
        group: GroupSettings {
            id: scenario.group.id.clone(),
            ..other.group
        },
        consumers: other.consumers,
        ..scenario.clone()
    })
}

/// The scenario with `key=value,...` group settings changed.
fn overridden(scenario: &Scenario, settings: &str) -> Result<Scenario, String> {
    let mut changed = scenario.clone();
    for pair in settings.split(',') {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("--compare-with: `{pair}` is not key=value"))?;
        match key.trim() {
            "protocol" => {
                changed.group.protocol = Protocol::from_name(value.trim()).ok_or_else(|| {
                    format!("--compare-with: unknown protocol `{value}` (classic or consumer)")
                })?
            }
            "assignor" => {
                changed.group.assignor = Assignor::from_name(value.trim())
                    .map(AssignorName)
                    .ok_or_else(|| format!("--compare-with: unknown assignor `{value}`"))?
            }
            other => {
                return Err(format!(
                    "--compare-with: `{other}` cannot be changed (protocol, assignor)"
                ))
            }
        }
    }
    Scenario::check(&changed).map_err(|e| format!("--compare-with: {e}"))?;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_name_known_settings_only() {
        let scenario = Scenario::parse(
            "topics: {t: 2}\nduration: 1m\nconsumers: [{name: c}]\nevents: [{at: 0s, join: c}]\n",
            "inline",
        )
        .unwrap();
        let changed = overridden(&scenario, "assignor=cooperative-sticky").unwrap();
        assert_eq!(changed.group.assignor.0, Assignor::CooperativeSticky);
        assert!(overridden(&scenario, "session_timeout=1s").is_err());
        assert!(overridden(&scenario, "assignor=uniform").is_err());
        assert!(simulate::run(&changed).is_ok());
    }
}
