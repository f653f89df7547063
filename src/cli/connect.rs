//! `actorlog connect CONFIG.yaml` runs the connectors of a file (the
//! `actorlog-connect` crate); `actorlog connect status` asks a running
//! worker's REST API how they are. The broker comes from the file's
//! `bootstrap.servers`, not from `--bootstrap`.

use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ConnectArgs {
    #[command(subcommand)]
    command: Option<ConnectCommand>,
    /// The connectors to run (YAML).
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ConnectCommand {
    /// Print the state of a worker's connectors and tasks.
    Status {
        /// The worker's REST API.
        #[arg(long, default_value = "http://127.0.0.1:8083")]
        url: String,
        /// Only this connector.
        connector: Option<String>,
    },
}

pub fn run(args: ConnectArgs) -> Result<(), String> {
    match (args.command, args.config) {
        (Some(ConnectCommand::Status { url, connector }), _) => {
            print!(
                "{}",
                actorlog_connect::status_report(&url, connector.as_deref())?
            );
            Ok(())
        }
        (None, Some(path)) => {
            let config = actorlog_connect::ConnectConfig::load(&path).map_err(|e| e.to_string())?;
            actorlog_connect::run(config).map_err(|e| e.to_string())
        }
        (None, None) => Err("connect: give a config file, or `status`".into()),
    }
}
