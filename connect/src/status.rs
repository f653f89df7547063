//! The state and counters of each connector of this worker, written by
//! its task and read by the REST API, in Kafka Connect's status shapes.

use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    Unassigned,
    Running,
    Paused,
    Failed,
    /// A source task another worker of the group runs.
    Elsewhere,
}

/// One connector (with its one task) as this worker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub role: &'static str,
    /// Paused through the REST API: the connector's own state.
    pub paused: bool,
    pub task: State,
    /// Why the task failed, for the status answer's `trace`.
    pub trace: Option<String>,
    pub records_in: u64,
    pub records_out: u64,
    /// Records skipped under `errors.tolerance: all`.
    pub errors: u64,
    pub dead_lettered: u64,
    /// Sink: records between the committed position and the log end.
    /// Source: bytes of the file not read yet.
    pub lag: u64,
}

/// A metric family: name, type, help, and how to read it off an entry.
type Family = (&'static str, &'static str, &'static str, fn(&Entry) -> u64);

#[derive(Clone)]
pub struct Statuses {
    worker_id: String,
    entries: Arc<Mutex<BTreeMap<String, Entry>>>,
}

impl Statuses {
    pub fn new(worker_id: String) -> Self {
        Self {
            worker_id,
            entries: Arc::default(),
        }
    }

    pub fn add(&self, name: &str, role: &'static str) {
        self.lock().insert(
            name.to_string(),
            Entry {
                role,
                paused: false,
                task: State::Unassigned,
                trace: None,
                records_in: 0,
                records_out: 0,
                errors: 0,
                dead_lettered: 0,
                lag: 0,
            },
        );
    }

    /// Changes a connector's entry; `false` if there is none.
    pub fn update(&self, name: &str, change: impl FnOnce(&mut Entry)) -> bool {
        match self.lock().get_mut(name) {
            Some(entry) => {
                change(entry);
                true
            }
            None => false,
        }
    }

    /// A task started: running, or paused if it was told to pause before,
    /// and the trace of an earlier failure is gone.
    pub fn task_started(&self, name: &str, paused: bool) {
        let state = if paused {
            State::Paused
        } else {
            State::Running
        };
        self.update(name, |e| {
            e.task = state;
            e.trace = None;
        });
    }

    /// A running task paused (a failed one stays failed).
    pub fn task_paused(&self, name: &str) {
        self.update(name, |e| {
            if e.task == State::Running {
                e.task = State::Paused;
            }
        });
    }

    /// A paused task resumed (a failed one stays failed).
    pub fn task_resumed(&self, name: &str) {
        self.update(name, |e| {
            if e.task == State::Paused {
                e.task = State::Running;
            }
        });
    }

    /// Another worker runs the task: a failure seen here is history.
    pub fn task_elsewhere(&self, name: &str) {
        self.update(name, |e| {
            e.task = State::Elsewhere;
            e.trace = None;
        });
    }

    pub fn get(&self, name: &str) -> Option<Entry> {
        self.lock().get(name).cloned()
    }

    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// The task failed: it stays failed until a restart.
    pub fn fail(&self, name: &str, trace: String) {
        log::error!("connector {name} failed: {trace}");
        self.update(name, |e| {
            e.task = State::Failed;
            e.trace = Some(trace);
        });
    }

    /// `GET /connectors/{name}/status`, as Kafka Connect answers it.
    pub fn status_json(&self, name: &str) -> Option<Value> {
        let e = self.get(name)?;
        let connector_state = if e.paused {
            State::Paused
        } else {
            State::Running
        };
        let mut task = json!({ "id": 0, "state": e.task });
        if e.task != State::Elsewhere {
            task["worker_id"] = Value::String(self.worker_id.clone());
        }
        if let Some(trace) = &e.trace {
            task["trace"] = Value::String(trace.clone());
        }
        Some(json!({
            "name": name,
            "connector": { "state": connector_state, "worker_id": self.worker_id },
            "tasks": [task],
            "type": e.role,
        }))
    }

    /// `GET /metrics`: the counters in Prometheus' text format.
    pub fn metrics_text(&self) -> String {
        let entries = self.lock().clone();
        let mut out = String::new();
        let families: [Family; 5] = [
            (
                "actorlog_connect_records_in_total",
                "counter",
                "Records read from the source file or topic.",
                |e| e.records_in,
            ),
            (
                "actorlog_connect_records_out_total",
                "counter",
                "Records written to Kafka or the sink file.",
                |e| e.records_out,
            ),
            (
                "actorlog_connect_errors_total",
                "counter",
                "Records skipped under errors.tolerance=all.",
                |e| e.errors,
            ),
            (
                "actorlog_connect_dead_lettered_total",
                "counter",
                "Records written to the dead-letter topic.",
                |e| e.dead_lettered,
            ),
            (
                "actorlog_connect_lag",
                "gauge",
                "Sink: records not committed yet; source: bytes of the file not read yet.",
                |e| e.lag,
            ),
        ];
        for (name, kind, help, read) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (connector, e) in &entries {
                let _ = writeln!(out, "{name}{{connector=\"{connector}\"}} {}", read(e));
            }
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_has_kafka_connects_shape() {
        let s = Statuses::new("127.0.0.1:8083".into());
        s.add("a", "source");
        s.update("a", |e| e.task = State::Running);
        assert_eq!(
            s.status_json("a").unwrap(),
            json!({
                "name": "a",
                "connector": {"state": "RUNNING", "worker_id": "127.0.0.1:8083"},
                "tasks": [{"id": 0, "state": "RUNNING", "worker_id": "127.0.0.1:8083"}],
                "type": "source",
            })
        );
        s.fail("a", "cannot open /x".into());
        s.update("a", |e| e.paused = true);
        let failed = s.status_json("a").unwrap();
        assert_eq!(failed["connector"]["state"], "PAUSED");
        assert_eq!(failed["tasks"][0]["state"], "FAILED");
        assert_eq!(failed["tasks"][0]["trace"], "cannot open /x");
        s.task_elsewhere("a");
        assert_eq!(
            s.status_json("a").unwrap()["tasks"][0],
            json!({"id": 0, "state": "ELSEWHERE"}),
            "another worker runs it: no worker id of this one"
        );
        assert!(s.status_json("b").is_none());
        assert!(!s.update("b", |_| {}));
    }

    #[test]
    fn metrics_name_each_connector() {
        let s = Statuses::new("w".into());
        s.add("a", "sink");
        s.update("a", |e| e.records_out = 5);
        let text = s.metrics_text();
        assert!(
            text.contains("actorlog_connect_records_out_total{connector=\"a\"} 5"),
            "{text}"
        );
    }
}
