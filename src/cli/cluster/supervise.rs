//! The brokers of `actorlog cluster` as child processes: started from this
//! same executable, watched (a broker that dies is named, the others keep
//! running, so killing one by hand shows a failover), and stopped with
//! SIGTERM on Ctrl-C, each flushing its data as `serve` does.

use super::BrokerPlan;
use std::fs::OpenOptions;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};

/// How often the children are looked at.
const POLL: Duration = Duration::from_millis(200);

/// How long the brokers get to shut down cleanly before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Lines of a dead broker's log shown with the news.
const LOG_TAIL_LINES: usize = 10;

/// A broker and its process, while it has one.
struct Running<'a> {
    plan: &'a BrokerPlan,
    child: Option<Child>,
    listening: bool,
}

/// Starts every broker, prints the bootstrap list, and watches them until
/// Ctrl-C or SIGTERM (then stops them all) or until none is left.
pub fn run(brokers: &[BrokerPlan]) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        // Before the children exist, so a Ctrl-C never finds us without
        // our handler and leaves them running.
        let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
        let mut terminate = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut running = Vec::with_capacity(brokers.len());
        for plan in brokers {
            match spawn(&exe, plan) {
                Ok(child) => {
                    println!(
                        "broker {}: pid {}, clients {}, controller {}, log {}",
                        plan.node_id,
                        child.id(),
                        plan.listen,
                        plan.controller_listen,
                        plan.log.display()
                    );
                    running.push(Running {
                        plan,
                        child: Some(child),
                        listening: false,
                    });
                }
                Err(e) => {
                    stop(&mut running);
                    return Err(e);
                }
            }
        }
        let bootstrap: Vec<String> = brokers.iter().map(|b| b.listen.to_string()).collect();
        println!("bootstrap servers: {}", bootstrap.join(","));
        println!("Ctrl-C stops every broker");
        let mut ticks = tokio::time::interval(POLL);
        loop {
            tokio::select! {
                _ = interrupt.recv() => break,
                _ = terminate.recv() => break,
                _ = ticks.tick() => {
                    check(&mut running);
                    if running.iter().all(|r| r.child.is_none()) {
                        return Err("every broker has exited".into());
                    }
                }
            }
        }
        stop(&mut running);
        Ok(())
    })
}

/// Runs `actorlog serve --config` for one broker, its output appended to
/// the broker's log file.
fn spawn(exe: &Path, plan: &BrokerPlan) -> Result<Child, String> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&plan.log)
        .map_err(|e| format!("cannot open {}: {e}", plan.log.display()))?;
    let stdout = log
        .try_clone()
        .map_err(|e| format!("{}: {e}", plan.log.display()))?;
    Command::new(exe)
        .arg("serve")
        .arg("--config")
        .arg(&plan.config)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start broker {}: {e}", plan.node_id))
}

/// Notes brokers that began to listen and names the ones that exited.
fn check(running: &mut [Running<'_>]) {
    let was_ready = running.iter().all(|r| r.listening);
    for broker in running.iter_mut() {
        let Some(child) = broker.child.as_mut() else {
            continue;
        };
        match child.try_wait() {
            Ok(None) => {
                if !broker.listening {
                    broker.listening =
                        TcpStream::connect_timeout(&broker.plan.listen, POLL).is_ok();
                }
            }
            Ok(Some(status)) => {
                eprintln!(
                    "broker {} (pid {}) exited unexpectedly: {status}; the others keep \
                     running. The end of {}:\n{}",
                    broker.plan.node_id,
                    child.id(),
                    broker.plan.log.display(),
                    log_tail(&broker.plan.log)
                );
                broker.child = None;
            }
            Err(e) => eprintln!(
                "broker {}: cannot check its process: {e}",
                broker.plan.node_id
            ),
        }
    }
    if !was_ready && running.iter().all(|r| r.listening) {
        println!("all {} brokers are listening", running.len());
    }
}

/// Sends SIGTERM to every broker still running and waits until they exit,
/// killing any that takes longer than [`STOP_TIMEOUT`].
fn stop(running: &mut [Running<'_>]) {
    let alive: Vec<&mut Running<'_>> = running.iter_mut().filter(|r| r.child.is_some()).collect();
    println!("stopping {} brokers", alive.len());
    for broker in &alive {
        let child = broker.child.as_ref().expect("a running broker");
        let pid = i32::try_from(child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            // A broker that already exited is reaped below.
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    for broker in alive {
        let id = broker.plan.node_id;
        let mut child = broker.child.take().expect("a running broker");
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => {
                    println!("broker {id} stopped");
                    break;
                }
                Ok(Some(status)) => {
                    eprintln!("broker {id} stopped with {status}");
                    break;
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
                _ => {
                    eprintln!("broker {id} did not stop within {STOP_TIMEOUT:?}; killing it");
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
    }
}

/// The last lines of a log file.
fn log_tail(path: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(path) else {
        return String::from("(unreadable)");
    };
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}
