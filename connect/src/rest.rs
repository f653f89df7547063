//! The REST API, on Kafka Connect's paths and JSON shapes: list
//! connectors, their status, pause, resume, restart; and `/metrics` in
//! Prometheus' text format. A few routes over one-request connections,
//! served as the broker serves its metrics, with no web framework.

use crate::status::Statuses;
use crate::worker::{Command, Operation, Worker};
use actix::Addr;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves until the listener fails.
pub async fn serve(listener: TcpListener, statuses: Statuses, worker: Addr<Worker>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let (statuses, worker) = (statuses.clone(), worker.clone());
        actix_rt::spawn(async move {
            let Some(head) = read_head(&mut stream).await else {
                return;
            };
            let line = String::from_utf8_lossy(&head);
            let mut words = line.split_whitespace();
            let method = words.next().unwrap_or("");
            let target = words.next().unwrap_or("");
            let path = target.split('?').next().unwrap_or("");
            let response = route(method, path, &statuses, &worker).await;
            let _ = stream.write_all(response.to_http().as_bytes()).await;
        });
    }
}

struct Response {
    status: &'static str,
    content_type: &'static str,
    body: String,
}

impl Response {
    fn json(status: &'static str, body: Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: body.to_string(),
        }
    }

    fn empty(status: &'static str) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: String::new(),
        }
    }

    /// Kafka Connect's error body.
    fn error(status: &'static str, code: u16, message: String) -> Self {
        Self::json(status, json!({ "error_code": code, "message": message }))
    }

    fn to_http(&self) -> String {
        format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            self.status,
            self.content_type,
            self.body.len(),
            self.body
        )
    }
}

async fn route(method: &str, path: &str, statuses: &Statuses, worker: &Addr<Worker>) -> Response {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        ("GET", [""]) => Response::json(
            "200 OK",
            json!({ "version": env!("CARGO_PKG_VERSION"), "commit": "", "kafka_cluster_id": "" }),
        ),
        ("GET", ["metrics"]) => Response {
            status: "200 OK",
            content_type: "text/plain; version=0.0.4",
            body: statuses.metrics_text(),
        },
        ("GET", ["connectors"]) => Response::json("200 OK", json!(statuses.names())),
        ("GET", ["connectors", name, "status"]) => match statuses.status_json(name) {
            Some(status) => Response::json("200 OK", status),
            None => not_found(name),
        },
        ("PUT", ["connectors", name, "pause"]) => {
            command(worker, name, Operation::Pause, "202 Accepted").await
        }
        ("PUT", ["connectors", name, "resume"]) => {
            command(worker, name, Operation::Resume, "202 Accepted").await
        }
        ("POST", ["connectors", name, "restart"]) => {
            command(worker, name, Operation::Restart, "204 No Content").await
        }
        (_, ["connectors", ..] | ["metrics"] | [""]) => Response::error(
            "405 Method Not Allowed",
            405,
            format!("{method} is not served on {path}"),
        ),
        _ => Response::error("404 Not Found", 404, format!("no resource {path}")),
    }
}

fn not_found(name: &str) -> Response {
    Response::error("404 Not Found", 404, format!("Connector {name} not found"))
}

async fn command(
    worker: &Addr<Worker>,
    name: &str,
    operation: Operation,
    done: &'static str,
) -> Response {
    let sent = worker
        .send(Command {
            connector: name.to_string(),
            operation,
        })
        .await;
    match sent {
        Ok(true) => Response::empty(done),
        Ok(false) => not_found(name),
        Err(e) => Response::error("500 Internal Server Error", 500, e.to_string()),
    }
}

/// Reads an HTTP request up to the blank line after its headers; `None`
/// if the peer goes away first or sends more than a request head can hold.
/// A body (Kafka Connect's clients send none here) is not read.
async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    const MAX_HEAD: usize = 8192;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return None;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    Some(head)
}
