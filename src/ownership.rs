//! A spool belongs to one Kafka cluster ([`crate::spool::cluster`]): before anything a
//! spool holds is sent, the cluster the producer reaches is asked for its id and
//! compared with the one the spool was written for.

use std::path::Path;
use std::time::Duration;

use rdkafka::producer::Producer;

use crate::kafka::KafkaProducer;
use crate::spool::cluster::{self, Owner, Verdict};

/// Whether the spool's events may go to the cluster `producer` reaches.
#[derive(Debug, PartialEq, Eq)]
pub enum Claimed {
    Yes,
    /// The cluster did not say who it is within the wait: ask again later.
    Unknown,
}

/// Asks the cluster for its id (up to `wait`), then judges: a spool holding `holding`
/// events and dead letters written for another cluster is refused (`Err`, naming both)
/// unless `adopt`. Records the cluster in the spool when it is (now) its own.
pub async fn claim(
    dir: &Path,
    bootstrap: &str,
    producer: KafkaProducer,
    holding: u64,
    adopt: bool,
    wait: Duration,
) -> anyhow::Result<Claimed> {
    let recorded = cluster::read(dir)?;
    let id = tokio::task::spawn_blocking(move || producer.client().fetch_cluster_id(wait))
        .await
        .ok()
        .flatten();
    let Some(cluster_id) = id else {
        return Ok(Claimed::Unknown);
    };
    let current = Owner {
        cluster_id,
        bootstrap: bootstrap.to_owned(),
    };
    match cluster::judge(dir, recorded.as_ref(), &current, holding, adopt) {
        Verdict::Refuse(why) => Err(anyhow::anyhow!(why)),
        Verdict::Send { record } => {
            if record {
                if let Err(error) = cluster::write(dir, &current) {
                    tracing::warn!(error = %error, "Cannot record in the spool which Kafka cluster it is for; it is tried again at the next start.");
                }
            }
            Ok(Claimed::Yes)
        }
    }
}

/// Events and dead letters the spool in `dir` holds, `waiting` of them in the spool.
pub fn holding(dir: &Path, waiting: u64) -> u64 {
    let dead = crate::spool::read_dead_letters(&dir.join("dead"))
        .map(|found| found.letters.len() as u64)
        .unwrap_or(0);
    waiting + dead
}
