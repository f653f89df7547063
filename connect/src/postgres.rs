//! What the PostgreSQL sink and the CDC source both need of SQL text and
//! of tokio-postgres' errors.

/// An SQL identifier, quoted: any name is safe in a statement.
pub fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The server's message when it refused, which the error's own Display
/// leaves out ("db error").
pub fn reason(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}
