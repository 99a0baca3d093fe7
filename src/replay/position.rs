//! Where a replay starts and stops.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum From {
    Beginning,
    End,
    /// The same offset on every partition.
    Offset(i64),
    /// Only the listed partitions, each at its offset.
    Partitions(Vec<(i32, i64)>),
    /// The first record at or after this time (unix ms).
    Time(i64),
}

/// Why `--from` or `--until` cannot be read; says what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PositionError {
    /// `option value` is not one of the forms it takes (`expected` lists them).
    Form {
        option: &'static str,
        value: String,
        expected: &'static str,
    },
    /// `option value`: its time or duration cannot be read.
    Time {
        option: &'static str,
        value: String,
        reason: String,
    },
    /// Only `P:N` may be given more than once, and not with another `--from`.
    Repeated,
    Mixed,
    UntilWithFollow,
}

impl std::fmt::Display for PositionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Form {
                option,
                value,
                expected,
            } => write!(f, "{option} {value}: expected {expected}"),
            Self::Time {
                option,
                value,
                reason,
            } => write!(f, "{option} {value}: {reason}"),
            Self::Repeated => f.write_str("--from is repeated only as P:N"),
            Self::Mixed => f.write_str("--from P:N cannot be mixed with another --from"),
            Self::UntilWithFollow => f.write_str("--until and --follow exclude each other"),
        }
    }
}

impl std::error::Error for PositionError {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Until {
    /// The high watermarks when the replay started.
    End,
    /// Records up to this time (unix ms), and no further than `End`.
    Time(i64),
    Follow,
}

/// Parses `beginning | end | offset:N | P:N (repeated) | time:<RFC 3339> | ago:<duration>`.
pub fn parse_from(values: &[String], now: SystemTime) -> Result<From, PositionError> {
    let form = |value: &str, expected| PositionError::Form {
        option: "--from",
        value: value.to_owned(),
        expected,
    };
    let time = |value: &str, reason: String| PositionError::Time {
        option: "--from",
        value: value.to_owned(),
        reason,
    };
    let mut partitions = Vec::new();
    let mut single = None;
    for value in values {
        let parsed = match value.split_once(':') {
            None if value == "beginning" => From::Beginning,
            None if value == "end" => From::End,
            Some(("offset", n)) => {
                From::Offset(n.parse().map_err(|_| form(value, "offset:<a number>"))?)
            }
            Some(("time", t)) => From::Time(
                parse_time(t).map_err(|e| time(value, format!("not an RFC 3339 time: {e}")))?,
            ),
            Some(("ago", d)) => {
                let ago = humantime::parse_duration(d).map_err(|e| time(value, e.to_string()))?;
                From::Time(unix_ms(now.checked_sub(ago).unwrap_or(UNIX_EPOCH)))
            }
            Some((p, n)) => match (p.parse::<i32>(), n.parse::<i64>()) {
                (Ok(p), Ok(n)) if p >= 0 && n >= 0 => {
                    partitions.push((p, n));
                    continue;
                }
                _ => return Err(form(value, "PARTITION:OFFSET")),
            },
            None => {
                return Err(form(
                    value,
                    "beginning, end, offset:N, P:N, time:<RFC 3339> or ago:<duration>",
                ))
            }
        };
        if single.replace(parsed).is_some() {
            return Err(PositionError::Repeated);
        }
    }
    match (single, partitions.is_empty()) {
        (Some(_), false) => Err(PositionError::Mixed),
        (Some(from), true) => Ok(from),
        (None, false) => Ok(From::Partitions(partitions)),
        (None, true) => Ok(From::Beginning),
    }
}

pub fn parse_until(value: Option<&str>, follow: bool) -> Result<Until, PositionError> {
    match (value, follow) {
        (Some(_), true) => Err(PositionError::UntilWithFollow),
        (None, true) => Ok(Until::Follow),
        (None, false) | (Some("end"), false) => Ok(Until::End),
        (Some(v), false) => match v.strip_prefix("time:") {
            Some(t) => Ok(Until::Time(parse_time(t).map_err(|e| {
                PositionError::Time {
                    option: "--until",
                    value: v.to_owned(),
                    reason: format!("not an RFC 3339 time: {e}"),
                }
            })?)),
            None => Err(PositionError::Form {
                option: "--until",
                value: v.to_owned(),
                expected: "end or time:<RFC 3339>",
            }),
        },
    }
}

/// Unix milliseconds of an RFC 3339 time.
fn parse_time(text: &str) -> Result<i64, humantime::TimestampError> {
    humantime::parse_rfc3339_weak(text).map(unix_ms)
}

pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(values: &[&str]) -> Result<From, PositionError> {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        parse_from(&values, UNIX_EPOCH + Duration::from_secs(1_000_000))
    }

    #[test]
    fn every_documented_start_parses() {
        assert_eq!(from(&[]), Ok(From::Beginning));
        assert_eq!(from(&["end"]), Ok(From::End));
        assert_eq!(from(&["offset:42"]), Ok(From::Offset(42)));
        assert_eq!(
            from(&["0:5", "3:7"]),
            Ok(From::Partitions(vec![(0, 5), (3, 7)]))
        );
        assert_eq!(from(&["time:1970-01-01T00:00:10Z"]), Ok(From::Time(10_000)));
        assert_eq!(from(&["ago:15m"]), Ok(From::Time(1_000_000_000 - 900_000)));
    }

    #[test]
    fn bad_starts_say_what_is_expected() {
        let said = |values: &[&str]| from(values).unwrap_err().to_string();
        assert!(said(&["middle"]).contains("expected"));
        assert_eq!(from(&["end", "0:1"]), Err(PositionError::Mixed));
        assert!(said(&["time:yesterday"]).contains("RFC 3339"));
        assert!(said(&["x:1"]).contains("PARTITION:OFFSET"));
    }

    #[test]
    fn stops_parse_and_exclude_follow() {
        assert_eq!(parse_until(None, false), Ok(Until::End));
        assert_eq!(parse_until(None, true), Ok(Until::Follow));
        assert_eq!(
            parse_until(Some("time:1970-01-01T00:00:01Z"), false),
            Ok(Until::Time(1000))
        );
        assert_eq!(
            parse_until(Some("end"), true),
            Err(PositionError::UntilWithFollow)
        );
    }
}
