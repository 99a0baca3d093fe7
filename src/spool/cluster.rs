//! Which Kafka cluster a spool was written for: the file `cluster` holds the cluster id
//! Kafka gave (metadata) and the bootstrap the bridge was given. A bridge or `spool
//! drain` pointed at another cluster does not send what the spool holds there (a dev
//! spool reaching production, a volume moved between environments) unless told to
//! adopt it.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

const FILE: &str = "cluster";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub cluster_id: String,
    pub bootstrap: String,
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cluster {} (bootstrap {})",
            self.cluster_id, self.bootstrap
        )
    }
}

/// The cluster the spool in `dir` was written for, if it says.
pub fn read(dir: &Path) -> io::Result<Option<Owner>> {
    let text = match fs::read_to_string(dir.join(FILE)) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    };
    Ok(field("cluster_id").map(|cluster_id| Owner {
        cluster_id,
        bootstrap: field("bootstrap").unwrap_or_default(),
    }))
}

/// Records that the spool in `dir` now belongs to `owner` (written beside, fsynced,
/// renamed over).
pub fn write(dir: &Path, owner: &Owner) -> io::Result<()> {
    let temporary = dir.join(format!("{FILE}.new"));
    let mut file = super::private::options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)?;
    write!(
        file,
        "cluster_id={}\nbootstrap={}\n",
        owner.cluster_id, owner.bootstrap
    )?;
    file.sync_all()?;
    fs::rename(&temporary, dir.join(FILE))?;
    fs::File::open(dir)?.sync_all()
}

/// What to do with a spool that holds `holding` events and dead letters, written for
/// `recorded`, when the bridge's Kafka is `current`.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send; the spool is (now) the current cluster's: record it when it says so.
    Send { record: bool },
    /// Another cluster's events: refuse, saying this.
    Refuse(String),
}

pub fn judge(
    dir: &Path,
    recorded: Option<&Owner>,
    current: &Owner,
    holding: u64,
    adopt: bool,
) -> Verdict {
    match recorded {
        None => Verdict::Send { record: true },
        Some(recorded) if recorded.cluster_id == current.cluster_id => Verdict::Send {
            record: recorded.bootstrap != current.bootstrap,
        },
        Some(recorded) if holding == 0 => {
            tracing::info!(%recorded, %current, "The spool was last used with another Kafka cluster and holds nothing; it now belongs to this one.");
            Verdict::Send { record: true }
        }
        Some(recorded) if adopt => {
            tracing::warn!(%recorded, %current, events = holding, "Adopting a spool written for another Kafka cluster (--adopt-spool): its events go to this one.");
            Verdict::Send { record: true }
        }
        Some(recorded) => Verdict::Refuse(format!(
            "the spool in {} holds {holding} events and dead letters written for Kafka {recorded}, \
             but this bridge's Kafka is {current}; they are not sent to another cluster. \
             Point kafka.brokers at the cluster they were written for, move the directory \
             aside (setting `spool_dir`), or start with --adopt-spool to send them to this one",
            dir.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(id: &str) -> Owner {
        Owner {
            cluster_id: id.into(),
            bootstrap: format!("{id}:9092"),
        }
    }

    #[test]
    fn a_spool_with_events_of_another_cluster_is_refused_unless_adopted_and_an_empty_one_moves() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), &owner("A")).unwrap();
        let recorded = read(dir.path()).unwrap();
        assert_eq!(recorded, Some(owner("A")));
        let recorded = recorded.as_ref();
        let b = owner("B");
        match judge(dir.path(), recorded, &b, 3, false) {
            Verdict::Refuse(why) => {
                assert!(why.contains("cluster A (bootstrap A:9092)"), "{why}");
                assert!(why.contains("cluster B (bootstrap B:9092)"), "{why}");
                assert!(why.contains("--adopt-spool"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            judge(dir.path(), recorded, &b, 3, true),
            Verdict::Send { record: true }
        );
        assert_eq!(
            judge(dir.path(), recorded, &b, 0, false),
            Verdict::Send { record: true }
        );
        assert_eq!(
            judge(dir.path(), recorded, &owner("A"), 3, false),
            Verdict::Send { record: false }
        );
    }
}
