//! The broker binary as a child process of the crash and load tests: a free
//! loopback port, a temporary directory for its config, data and log, and
//! SIGKILL and restart on the same data. The process is killed when the
//! handle drops.

#![allow(dead_code)] // each program uses its own subset

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a start may take before it counts as failed.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Broker {
    binary: PathBuf,
    root: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

/// The release binary next to the example that runs: both live under
/// `target/release`.
pub fn default_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("actorlog")))
        .unwrap_or_else(|| PathBuf::from("target/release/actorlog"))
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

impl Broker {
    /// Starts `binary serve` with `config` (config.yaml text; listen and
    /// data_dir are set here) and waits until it accepts connections.
    pub fn start(binary: &Path, config: &str) -> Result<Broker, String> {
        if !binary.is_file() {
            return Err(format!(
                "no broker binary at {} (cargo build --release)",
                binary.display()
            ));
        }
        let root = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        fs::write(root.path().join("config.yaml"), config)
            .map_err(|e| format!("writing config.yaml: {e}"))?;
        let mut broker = Broker {
            binary: binary.to_path_buf(),
            root,
            port: free_port()?,
            child: None,
        };
        broker.restart()?;
        Ok(broker)
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The resident set size of the running broker in kB, from
    /// /proc/PID/status.
    pub fn rss_kb(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Where the broker keeps its data.
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// The broker's stderr, over all its runs.
    pub fn log_path(&self) -> PathBuf {
        self.root.path().join("broker.log")
    }

    /// Starts the broker (again) on the same port and data.
    pub fn restart(&mut self) -> Result<(), String> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("broker log: {e}"))?;
        let child = Command::new(&self.binary)
            .arg("serve")
            .arg("--config")
            .arg(self.root.path().join("config.yaml"))
            .args(["--listen", &self.bootstrap(), "--data-dir"])
            .arg(self.root.path().join("data"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.binary.display()))?;
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(self.bootstrap()).is_err() {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok()?) {
                return Err(format!(
                    "the broker exited at start ({status}); see {}",
                    self.log_path().display()
                ));
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(format!(
                    "the broker did not listen within {START_TIMEOUT:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// SIGKILL: nothing gets flushed.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the broker still runs (it may have crashed on its own).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Lines of the broker's log that show a panic.
    pub fn panics(&self) -> Vec<String> {
        fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("panicked"))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
    }
}
