//! `meta.properties` of a broker's cluster directory: which cluster and
//! node the directory belongs to, and the format of the metadata it holds,
//! as Kafka's `meta.properties` (`cluster.id`, `node.id`, `version`).
//!
//! The raft log, the vote and the image snapshots are bincode, which has no
//! room for a field it does not know: a directory written by a build whose
//! `ClusterImage`, `Command` or log entries differ would decode into errors
//! or, worse, wrong values. The format number makes that a refusal naming
//! both formats instead.

use super::raft::files;
use std::io;
use std::path::Path;

/// The metadata format this build writes and reads. Bump it whenever the
/// encoding of `ClusterImage`, `Command` or the raft log entries changes.
pub const METADATA_FORMAT: u32 = 1;

const FILE: &str = "meta.properties";

/// Writes the cluster id, node id and format on first start; refuses a
/// directory of another cluster or node, or of another metadata format (a
/// file without the key predates the versioning: format 0).
pub fn check(dir: &Path, cluster_id: &str, node_id: i32) -> io::Result<()> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let text = format!(
                "cluster.id={cluster_id}\nnode.id={node_id}\nmetadata.format={METADATA_FORMAT}\n"
            );
            return files::replace_file(&path, text.as_bytes(), true);
        }
        Err(e) => return Err(e),
    };
    let value = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
    };
    let found_node = value("node.id").and_then(|v| v.parse::<i32>().ok());
    let (Some(found_cluster), Some(found_node)) = (value("cluster.id"), found_node) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} lacks cluster.id or node.id", path.display()),
        ));
    };
    if found_cluster != cluster_id || found_node != node_id {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "data directory {} belongs to cluster id {found_cluster} as node \
                 {found_node}, but the config says cluster id {cluster_id} as node \
                 {node_id}; refusing to start",
                dir.display()
            ),
        ));
    }
    let format = value("metadata.format").map_or(Some(0), |v| v.parse::<u32>().ok());
    match format {
        Some(METADATA_FORMAT) => Ok(()),
        Some(found) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "data directory {} holds cluster metadata in format {found}, but this \
                 actorlog reads format {METADATA_FORMAT}; start it with the actorlog \
                 that wrote it, or on an empty data directory to rejoin the cluster \
                 as a new replica",
                dir.display()
            ),
        )),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: metadata.format is not a number", path.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(text: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), text).unwrap();
        dir
    }

    #[test]
    fn a_new_directory_is_claimed_and_then_accepted() {
        let dir = tempfile::tempdir().unwrap();
        check(dir.path(), "alpha", 1).unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(text.contains(&format!("metadata.format={METADATA_FORMAT}")));
        check(dir.path(), "alpha", 1).unwrap();
    }

    #[test]
    fn another_format_is_refused_naming_both() {
        let other = METADATA_FORMAT + 1;
        let dir = written(&format!(
            "cluster.id=alpha\nnode.id=1\nmetadata.format={other}\n"
        ));
        let err = check(dir.path(), "alpha", 1).unwrap_err().to_string();
        assert!(err.contains(&format!("format {other}")), "{err}");
        assert!(err.contains(&format!("format {METADATA_FORMAT}")), "{err}");
    }

    #[test]
    fn a_directory_from_before_formats_is_format_zero() {
        let dir = written("cluster.id=alpha\nnode.id=1\n");
        let err = check(dir.path(), "alpha", 1).unwrap_err().to_string();
        assert!(err.contains("format 0"), "{err}");
    }

    #[test]
    fn another_node_or_cluster_is_refused() {
        let dir = written(&format!(
            "cluster.id=alpha\nnode.id=1\nmetadata.format={METADATA_FORMAT}\n"
        ));
        assert!(check(dir.path(), "beta", 1).is_err());
        assert!(check(dir.path(), "alpha", 2).is_err());
        let garbage = written("metadata.format=x\ncluster.id=alpha\nnode.id=1\n");
        assert!(check(garbage.path(), "alpha", 1).is_err());
    }
}
