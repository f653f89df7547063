//! `actorlog connect status`: asks a worker's REST API for its connectors
//! and prints one line each.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The status lines of the worker at `url` (`http://host:port`), of one
/// connector or all.
pub fn report(url: &str, connector: Option<&str>) -> Result<String, String> {
    let names: Vec<String> = match connector {
        Some(name) => vec![name.to_string()],
        None => serde_json::from_value(get(url, "/connectors")?)
            .map_err(|e| format!("{url}/connectors: unexpected answer: {e}"))?,
    };
    let mut out = format!(
        "{:<24} {:<7} {:<10} {:<10} TRACE\n",
        "NAME", "TYPE", "CONNECTOR", "TASK"
    );
    for name in names {
        let status = get(url, &format!("/connectors/{name}/status"))?;
        let field = |v: &Value| v.as_str().unwrap_or("-").to_string();
        let task = &status["tasks"][0];
        out.push_str(&format!(
            "{:<24} {:<7} {:<10} {:<10} {}\n",
            name,
            field(&status["type"]),
            field(&status["connector"]["state"]),
            field(&task["state"]),
            task["trace"].as_str().unwrap_or("")
        ));
    }
    Ok(out)
}

/// A GET over a fresh connection, its body parsed as JSON.
fn get(url: &str, path: &str) -> Result<Value, String> {
    let authority = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are served"))?
        .trim_end_matches('/');
    let fail = |e: std::io::Error| format!("{url}{path}: {e}");
    let mut stream = TcpStream::connect(authority).map_err(fail)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(fail)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(fail)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(fail)?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{url}{path}: not an HTTP answer"))?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    if status != "200" {
        let message = json["message"].as_str().unwrap_or(body);
        return Err(format!("{url}{path}: {status} {message}"));
    }
    Ok(json)
}
