//! One hour of one chat type: Tencent's files for it, the ids the topic already holds,
//! and what is missing published while the files are read. Memory is the hour's ids
//! (16 bytes each), never a file or the missing events.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::archive::{self, Found};
use super::events::{self, ChatType};
use super::kafka::{self, Ids, Publisher};
use super::state::{Counts, HourReport, Outcome};
use super::window::Hour;
use crate::rest::client::{Rest, RestError};
use crate::rest::history::{ArchiveFile, History};
use crate::route::Routes;
use crate::settings::{KafkaConfig, ReconcileSettings};

/// What every hour of one app's run shares.
pub struct AppRun<'a> {
    pub rest: &'a Rest,
    pub kafka: &'a KafkaConfig,
    pub routes: &'a Routes,
    pub settings: &'a ReconcileSettings,
    pub sdk_app_id: u64,
    pub dry_run: bool,
}

impl AppRun<'_> {
    /// Reconciles `hour` of `chat`. An error is one no hour can get past (Tencent
    /// refusing the app's credentials); anything else is in the report.
    pub async fn hour(
        &self,
        publisher: &mut Publisher,
        hour: Hour,
        chat: ChatType,
    ) -> Result<HourReport, RestError> {
        let now = SystemTime::now();
        let mut report = HourReport {
            sdk_app_id: self.sdk_app_id,
            chat_type: chat,
            hour: hour.utc(),
            beijing_hour: hour.beijing(),
            outcome: Outcome::Done,
            counts: Counts::default(),
            reason: None,
            at: String::new(),
        };
        let ready_after = Duration::from_secs(self.settings.ready_after_secs);
        let (outcome, reason) = match self.rest.get_history(chat.as_str(), &hour.beijing()).await {
            Ok(History::NotReady) if hour.is_due(now, ready_after) => (
                Outcome::Empty,
                Some("no file (1004) past reconcile.ready_after_secs: Tencent had no message this hour; asked again on the next run".into()),
            ),
            Ok(History::NotReady) => (
                Outcome::NotReady,
                Some("Tencent has not finished this hour (1004); the next run tries again".into()),
            ),
            Ok(History::Expired) => (
                Outcome::Lost,
                Some("older than Tencent keeps files (1005, 7 days) and never reconciled: whatever did not reach the bridge in this hour is lost for good".into()),
            ),
            Ok(History::Files(files)) => match self.files(publisher, hour, chat, &files, &mut report.counts).await {
                Ok(()) => (Outcome::Done, None),
                Err(Stop::Rest(error)) if error.is_fatal() => return Err(error),
                Err(why) => (Outcome::Failed, Some(why.to_string())),
            },
            Err(error) if error.is_fatal() => return Err(error),
            Err(error) => (Outcome::Failed, Some(error.to_string())),
        };
        report.outcome = outcome;
        report.reason = reason;
        report.at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        Ok(report)
    }

    async fn files(
        &self,
        publisher: &mut Publisher,
        hour: Hour,
        chat: ChatType,
        files: &[ArchiveFile],
        counts: &mut Counts,
    ) -> Result<(), Stop> {
        let topic = self
            .routes
            .topic_for(chat.family(), chat.command())
            .to_owned();
        let margin = |secs: u64| secs as i64 * 1000;
        let mut ids = tokio::task::block_in_place(|| {
            kafka::ids_between(
                self.kafka,
                &HashSet::from([topic.as_str()]),
                hour.start_ms() - margin(self.settings.early_margin_secs),
                hour.end_ms() + margin(self.settings.late_margin_secs),
            )
        })
        .map_err(|e| Stop::Kafka(format!("{e:#}")))?;
        let download = tempfile::tempdir().map_err(|e| Stop::Local(e.to_string()))?;
        for (n, file) in files.iter().enumerate() {
            let path = download.path().join(format!("{n}.gz"));
            self.fetch_verified(file, &path, n).await?;
            let found = tokio::task::block_in_place(|| {
                self.publish_missing(publisher, &path, chat, &topic, &mut ids, counts)
            })?;
            counts.archived += found.messages;
            counts.unreadable += found.unreadable.len() as u64;
            for line in &found.unreadable {
                if counts.unreadable_lines.len() < 20 {
                    counts
                        .unreadable_lines
                        .push(format!("file {n} line {line}"));
                }
            }
            for line in found.unreadable.iter().take(10) {
                tracing::warn!(
                    hour = %hour.utc(),
                    chat = chat.as_str(),
                    file = n,
                    line,
                    "An unreadable line in the archive file; the rest goes on."
                );
            }
            std::fs::remove_file(&path).ok();
        }
        if !self.dry_run {
            let settled = tokio::task::block_in_place(|| publisher.settle());
            counts.published = settled.confirmed;
            if settled.failed > 0 {
                return Err(Stop::Kafka(format!(
                    "Kafka did not take {} of the {} missing events: {}",
                    settled.failed,
                    counts.missing,
                    settled.first_failure.unwrap_or_default()
                )));
            }
        }
        Ok(())
    }

    /// Downloads `file`; one that does not match what `get_history` said, or cannot be
    /// read whole, is fetched once more, then reported.
    async fn fetch_verified(&self, file: &ArchiveFile, path: &Path, n: usize) -> Result<(), Stop> {
        let mut tries = 0;
        loop {
            tries += 1;
            self.rest.download(file, path).await.map_err(Stop::Rest)?;
            let verified = tokio::task::block_in_place(|| {
                archive::verify(
                    path,
                    (file.gzip_size, &file.gzip_md5),
                    (file.file_size, &file.file_md5),
                )
            });
            match verified {
                Ok(()) => return Ok(()),
                Err(problem) if tries < 2 => {
                    tracing::warn!(file = n, %problem, "An archive file does not match its checksums or cannot be read; fetching it again.");
                }
                Err(problem) => return Err(Stop::File(n, problem)),
            }
        }
    }

    /// Reads a verified file, publishing each event whose id the topic lacks.
    fn publish_missing(
        &self,
        publisher: &Publisher,
        path: &Path,
        chat: ChatType,
        topic: &str,
        ids: &mut Ids,
        counts: &mut Counts,
    ) -> Result<Found, Stop> {
        let now = SystemTime::now();
        let mut refused_by_kafka = None;
        let found = archive::read_file(path, |message| {
            let events = match events::normalize(self.sdk_app_id, chat, &message, now) {
                Ok((_, events)) => events,
                Err(why) => {
                    let reason = crate::settings::printable(&why.to_string(), 120);
                    tracing::warn!(%reason, seq = message.seq, "An archived message the normalizer refuses.");
                    *counts.refused.entry(reason).or_default() += 1;
                    return;
                }
            };
            for event in events {
                if !ids.insert(&event.id) {
                    counts.already += 1;
                    continue;
                }
                counts.missing += 1;
                if self.dry_run || refused_by_kafka.is_some() {
                    continue;
                }
                if let Err(error) =
                    publisher.send_event(topic, chat.command(), self.sdk_app_id, &event)
                {
                    refused_by_kafka = Some(error.to_string());
                }
            }
        })
        .map_err(|problem| Stop::File(0, problem))?;
        match refused_by_kafka {
            Some(why) => Err(Stop::Kafka(why)),
            None => Ok(found),
        }
    }
}

/// Why an hour stopped before it was done.
enum Stop {
    Rest(RestError),
    File(usize, archive::FileProblem),
    Kafka(String),
    Local(String),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Rest(error) => write!(f, "{error}"),
            Stop::File(n, problem) => write!(f, "file {n}: {problem}"),
            Stop::Kafka(why) => write!(f, "Kafka: {why}"),
            Stop::Local(why) => write!(f, "cannot make a download directory: {why}"),
        }
    }
}
