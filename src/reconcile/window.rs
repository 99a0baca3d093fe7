//! The hours to reconcile. The command line speaks UTC; Tencent's archive is kept per
//! Beijing hour (UTC+8, `MsgTime` `YYYYMMDDHH`: "MsgTime 使用的是北京时间，不支持其他时区",
//! tencentcloud.com/zh/document/product/1047/34885). Both are whole hours, so each UTC
//! hour is exactly one Beijing hour.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const HOUR: u64 = 3600;
const BEIJING_OFFSET: u64 = 8 * HOUR;
/// How long Tencent keeps an hour's files: "文件有效期7天" (cloud.tencent.com/document/product/269/1650).
pub const KEPT: Duration = Duration::from_secs(7 * 24 * HOUR);

/// One hour, by its start in unix seconds (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hour(u64);

impl Hour {
    pub fn starting(unix: u64) -> Self {
        Self(unix - unix % HOUR)
    }

    pub fn start_ms(self) -> i64 {
        (self.0 * 1000) as i64
    }

    pub fn end_ms(self) -> i64 {
        ((self.0 + HOUR) * 1000) as i64
    }

    /// Whether Tencent should have finished this hour's files by `now`.
    pub fn is_due(self, now: SystemTime, ready_after: Duration) -> bool {
        unix(now) >= self.0 + HOUR + ready_after.as_secs()
    }

    /// Whether Tencent has deleted this hour's files by `now` (it keeps them 7 days).
    pub fn is_expired(self, now: SystemTime) -> bool {
        unix(now) >= self.0 + HOUR + KEPT.as_secs()
    }

    /// `2026-12-06T03:00:00Z`
    pub fn utc(self) -> String {
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(self.0)).to_string()
    }

    /// `get_history`'s `MsgTime` for this hour: `2026120611` for 03:00 UTC.
    pub fn beijing(self) -> String {
        let text = humantime::format_rfc3339_seconds(
            UNIX_EPOCH + Duration::from_secs(self.0 + BEIJING_OFFSET),
        )
        .to_string();
        text.chars().filter(char::is_ascii_digit).take(10).collect()
    }
}

pub fn parse_time(text: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339(text)
        .map_err(|e| format!("`{text}`: {e} (an RFC 3339 time in UTC, e.g. 2026-12-06T03:00:00Z)"))
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The hours from `from` to `to` (the hour `to` falls in is not included), or the
/// `last` ones ending with the newest hour that is due (`ready_after` past its end).
pub fn hours(
    from: Option<SystemTime>,
    to: Option<SystemTime>,
    last: Option<Duration>,
    now: SystemTime,
    ready_after: Duration,
) -> anyhow::Result<Vec<Hour>> {
    let (start, end) = match (from, to, last) {
        (Some(from), to, None) => (unix(from), to.map_or(Hour::starting(unix(now)).0, unix)),
        (None, None, Some(last)) => {
            let end = Hour::starting(unix(now).saturating_sub(ready_after.as_secs())).0;
            (end.saturating_sub(last.as_secs()), end)
        }
        _ => anyhow::bail!("give --from (and optionally --to), or --last"),
    };
    let mut hours = Vec::new();
    let mut hour = Hour::starting(start);
    while hour.0 < end {
        hours.push(hour);
        hour = Hour(hour.0 + HOUR);
    }
    if hours.is_empty() {
        anyhow::bail!("the window holds no whole hour");
    }
    Ok(hours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_utc_hour_is_read_as_the_beijing_hour_eight_hours_later() {
        let hour = Hour::starting(unix(parse_time("2026-12-06T03:17:00Z").unwrap()));
        assert_eq!(hour.utc(), "2026-12-06T03:00:00Z");
        assert_eq!(hour.beijing(), "2026120611");
        let late = Hour::starting(unix(parse_time("2026-12-06T20:00:00Z").unwrap()));
        assert_eq!(late.beijing(), "2026120704", "the next day in Beijing");
    }

    #[test]
    fn the_window_is_whole_hours_and_last_ends_with_the_newest_due_hour() {
        let now = parse_time("2026-12-06T11:30:00Z").unwrap();
        let ready = Duration::from_secs(HOUR);
        let last = hours(None, None, Some(Duration::from_secs(3 * HOUR)), now, ready).unwrap();
        let shown: Vec<String> = last.iter().map(|h| h.utc()).collect();
        assert_eq!(
            shown,
            [
                "2026-12-06T07:00:00Z",
                "2026-12-06T08:00:00Z",
                "2026-12-06T09:00:00Z"
            ]
        );
        let from = parse_time("2026-12-06T01:00:00Z").unwrap();
        let to = parse_time("2026-12-06T03:00:00Z").unwrap();
        assert!(last[2].is_due(now, ready));
        assert!(
            !Hour(last[2].0 + HOUR).is_due(now, ready),
            "10:00 ended 30 min ago"
        );
        assert_eq!(
            hours(Some(from), Some(to), None, now, ready).unwrap().len(),
            2
        );
        assert!(hours(None, None, None, now, ready).is_err());
    }
}
