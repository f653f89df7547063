use actorlog::cli::{
    self, cluster::ClusterArgs, connect::ConnectArgs, consume::ConsumeArgs, groups::GroupsCommand,
    produce::ProduceArgs, simulate::SimulateArgs, topics::TopicsCommand, users::UsersCommand,
};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// A backstop against sizes read from outside the process: requests are
/// bounded by the decoder itself (`actorlog_actors::connection::frame`).
#[global_allocator]
static ALLOC: actorlog::actors::alloc::Guarded = actorlog::actors::alloc::Guarded;

/// actorlog: a Kafka-compatible message broker built as an actor system.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Broker to talk to (client commands), host:port.
    #[arg(long, short = 'b', global = true, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker.
    Serve {
        /// YAML config file; without it the embedded config.yaml is used.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Override `listen`.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Override `data_dir`.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Create, list, describe and delete topics.
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// List, describe, delete consumer groups and reset their offsets.
    Groups {
        #[command(subcommand)]
        command: GroupsCommand,
    },
    /// Add, delete and list SCRAM users (over a PLAINTEXT listener).
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Produce lines from stdin, one record each.
    Produce(ProduceArgs),
    /// Print records of a topic, one value per line.
    Consume(ConsumeArgs),
    /// Play a consumer-group rebalance scenario on a virtual clock.
    Simulate(SimulateArgs),
    /// Run a local cluster of broker processes until Ctrl-C.
    Cluster(ClusterArgs),
    /// Run connectors (file source and sink, PostgreSQL sink) from a YAML file, or show their status.
    Connect(ConnectArgs),
}

/// The client commands write to pipes like any Unix tool, so a reader that
/// goes away (`actorlog topics list | head`) ends them quietly. Rust ignores
/// SIGPIPE, which would turn that into a panic in `println!`; the broker
/// keeps ignoring it, as a client closing its socket must not stop it.
#[allow(unsafe_code)] // rustix has no safe call to set a signal's disposition.
fn end_quietly_when_the_reader_goes() {
    // SAFETY: setting a signal's disposition to its default, before any
    // other thread exists, touches no memory of ours.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The simulator's group logs every rebalance with random member ids;
    // its report says what happened.
    let default_level = match cli.command {
        Command::Simulate(_) => "warn",
        _ => "info",
    };
    // Milliseconds: a failover or a rebalance happens within seconds.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level))
        .format_timestamp_millis()
        .init();
    if !matches!(cli.command, Command::Serve { .. }) {
        end_quietly_when_the_reader_goes();
    }
    let result = match cli.command {
        Command::Serve {
            config,
            listen,
            data_dir,
        } => serve(config, listen, data_dir),
        Command::Topics { command } => cli::topics::run(&cli.bootstrap, command),
        Command::Groups { command } => cli::groups::run(&cli.bootstrap, command),
        Command::Users { command } => cli::users::run(&cli.bootstrap, command),
        Command::Produce(args) => cli::produce::run(&cli.bootstrap, args),
        Command::Consume(args) => cli::consume::run(&cli.bootstrap, args),
        Command::Simulate(args) => cli::simulate::run(args),
        Command::Cluster(args) => cli::cluster::run(args),
        Command::Connect(args) => cli::connect::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("actorlog: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(
    config: Option<PathBuf>,
    listen: Option<std::net::SocketAddr>,
    data_dir: Option<PathBuf>,
) -> Result<(), String> {
    let mut config = actorlog::config_file::load(config.as_deref())?;
    if let Some(listen) = listen {
        config.listen = Some(listen);
    }
    if let Some(data_dir) = data_dir {
        config.data_dir = data_dir;
    }
    config.validate()?;
    actorlog::server::run(config).map_err(|e| e.to_string())
}
