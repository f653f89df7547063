//! The real `actorlog` binary as a child process on a free loopback port,
//! with its data in a temporary directory: start, SIGTERM, SIGKILL, start
//! again on the same data. The process is killed when the handle drops,
//! also when a test panics.

#![allow(dead_code)] // each test file uses its own subset

#[path = "../ports/mod.rs"]
mod ports;
pub use ports::free_port;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct BrokerProcess {
    child: Option<Child>,
    port: u16,
    data: PathBuf,
    /// The temporary data directory, unless the test gave its own.
    temporary: Option<tempfile::TempDir>,
    extra: Vec<String>,
    /// Holds the `--config` file of [`BrokerProcess::start_with_config`].
    config_dir: Option<tempfile::TempDir>,
    /// A soft open-file limit the broker starts under.
    file_limit: Option<u64>,
    /// The config names the listeners: no `--listen`.
    own_listeners: bool,
}

impl BrokerProcess {
    pub fn start() -> BrokerProcess {
        Self::start_with(&[])
    }

    /// Starts with extra `serve` arguments (e.g. `--config FILE`).
    pub fn start_with(extra: &[&str]) -> BrokerProcess {
        let temporary = tempfile::tempdir().expect("temp dir");
        let mut broker = Self::start_on(temporary.path(), extra);
        broker.temporary = Some(temporary);
        broker
    }

    /// Starts with its data in `data_dir`, which the test cleans up.
    pub fn start_on(data_dir: &Path, extra: &[&str]) -> BrokerProcess {
        let mut broker = BrokerProcess {
            child: None,
            port: free_port(),
            data: data_dir.to_path_buf(),
            temporary: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            config_dir: None,
            file_limit: None,
            own_listeners: false,
        };
        broker.spawn();
        broker
    }

    /// Starts as a shell with a low soft limit on open files (`ulimit -Sn`)
    /// would start it.
    pub fn start_with_file_limit(soft: u64) -> BrokerProcess {
        let temporary = tempfile::tempdir().expect("temp dir");
        let mut broker = BrokerProcess {
            child: None,
            port: free_port(),
            data: temporary.path().to_path_buf(),
            temporary: Some(temporary),
            extra: Vec::new(),
            config_dir: None,
            file_limit: Some(soft),
            own_listeners: false,
        };
        broker.spawn();
        broker
    }

    /// Starts with `yaml` as its config file.
    pub fn start_with_config(yaml: &str) -> BrokerProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, yaml).expect("config written");
        let mut broker = Self::start_with(&["--config", path.to_str().expect("utf-8")]);
        broker.config_dir = Some(dir);
        broker
    }

    /// Starts with `yaml` as its config file, which sets `listeners`;
    /// `port` is the PLAINTEXT listener's, which [`Self::bootstrap`] names.
    pub fn start_with_listeners(yaml: &str, port: u16) -> BrokerProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, yaml).expect("config written");
        let data = tempfile::tempdir().expect("temp dir");
        let mut broker = BrokerProcess {
            child: None,
            port,
            data: data.path().to_path_buf(),
            temporary: Some(data),
            extra: vec!["--config".into(), path.display().to_string()],
            config_dir: Some(dir),
            file_limit: None,
            own_listeners: true,
        };
        broker.spawn();
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    // `pre_exec` is unsafe by its nature: the closure runs between fork and exec.
    #[allow(unsafe_code)]
    fn spawn(&mut self) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_actorlog"));
        command.arg("serve");
        if !self.own_listeners {
            command.args(["--listen", &self.bootstrap()]);
        }
        command
            .arg("--data-dir")
            .arg(&self.data)
            .args(&self.extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(soft) = self.file_limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: between fork and exec this only calls getrlimit and
            // setrlimit, which are async-signal-safe.
            unsafe {
                command.pre_exec(move || {
                    let mut limit = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    limit.rlim_cur = soft;
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = command.spawn().expect("the broker binary starts");
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(self.bootstrap()).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "broker did not listen"
            );
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("broker exited at start: {status}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for the clean exit.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let status = child.wait().expect("broker exit");
            assert!(status.success(), "clean shutdown on SIGTERM: {status}");
        }
    }

    /// Starts again on the same data directory and port.
    pub fn restart(&mut self) {
        self.spawn();
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().map(|s| s.is_none()).unwrap_or(false))
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs `actorlog` with arguments (a client subcommand) and stdin; returns
/// (success, stdout, stderr).
pub fn actorlog(args: &[&str], stdin: &str) -> (bool, String, String) {
    run(
        Command::new(env!("CARGO_BIN_EXE_actorlog")).args(args),
        stdin,
    )
}

/// Runs a command with `stdin`, waiting at most a minute.
pub fn run(command: &mut Command, stdin: &str) -> (bool, String, String) {
    run_for(command, stdin, Duration::from_secs(60))
}

/// Runs a command with `stdin`, waiting at most `limit`.
pub fn run_for(command: &mut Command, stdin: &str, limit: Duration) -> (bool, String, String) {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("command starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin written");
    let start = Instant::now();
    while child.try_wait().expect("status").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("command timed out: {command:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The response to `GET path` on `127.0.0.1:port` (the metrics endpoint).
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response
}

/// The value of the sample `name_and_labels` in a metrics page.
pub fn sample(metrics: &str, name_and_labels: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(name_and_labels)?.strip_prefix(' ')?;
        value.parse().ok()
    })
}

/// A path inside the test sources (client scripts).
pub fn source(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}
