//! The rebalance simulator: plays a consumer-group scenario against the
//! broker's own group state machine and assignors on a virtual clock. No
//! sockets, no sleeping, no randomness that is not seeded: hours of
//! virtual time take milliseconds, and a scenario always gives the same
//! report.

mod classic;
mod clients;
mod cluster;
mod generate;
mod kip848;
mod lifecycle;
mod protocol;
mod report;
mod runner;
pub mod scenario;
pub mod svg;

pub use report::{
    compare, BrokerFailure, ClusterReport, EventReport, Generation, Offsets, Report, Summary,
};
pub use runner::run;
pub use scenario::{Scenario, ScenarioError};

use std::path::Path;

/// Reads and checks a scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ScenarioError(format!("{}: {e}", path.display())))?;
    Scenario::parse(&text, &path.display().to_string())
}
