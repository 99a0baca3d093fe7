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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Until {
    /// The high watermarks when the replay started.
    End,
    /// Records up to this time (unix ms), and no further than `End`.
    Time(i64),
    Follow,
}

/// Parses `beginning | end | offset:N | P:N (repeated) | time:<RFC 3339> | ago:<duration>`.
pub fn parse_from(values: &[String], now: SystemTime) -> Result<From, String> {
    let mut partitions = Vec::new();
    let mut single = None;
    for value in values {
        let parsed = match value.split_once(':') {
            None if value == "beginning" => From::Beginning,
            None if value == "end" => From::End,
            Some(("offset", n)) => From::Offset(n.parse().map_err(|_| format!("--from {value}: not an offset"))?),
            Some(("time", t)) => From::Time(parse_time(t).map_err(|e| format!("--from {value}: {e}"))?),
            Some(("ago", d)) => {
                let ago = humantime::parse_duration(d).map_err(|e| format!("--from {value}: {e}"))?;
                From::Time(unix_ms(now.checked_sub(ago).unwrap_or(UNIX_EPOCH)))
            }
            Some((p, n)) => match (p.parse::<i32>(), n.parse::<i64>()) {
                (Ok(p), Ok(n)) if p >= 0 && n >= 0 => {
                    partitions.push((p, n));
                    continue;
                }
                _ => return Err(format!("--from {value}: expected PARTITION:OFFSET")),
            },
            None => return Err(format!("--from {value}: expected beginning, end, offset:N, P:N, time:<RFC 3339> or ago:<duration>")),
        };
        if single.replace(parsed).is_some() {
            return Err("--from is repeated only as P:N".into());
        }
    }
    match (single, partitions.is_empty()) {
        (Some(_), false) => Err("--from P:N cannot be mixed with another --from".into()),
        (Some(from), true) => Ok(from),
        (None, false) => Ok(From::Partitions(partitions)),
        (None, true) => Ok(From::Beginning),
    }
}

pub fn parse_until(value: Option<&str>, follow: bool) -> Result<Until, String> {
    match (value, follow) {
        (Some(_), true) => Err("--until and --follow exclude each other".into()),
        (None, true) => Ok(Until::Follow),
        (None, false) | (Some("end"), false) => Ok(Until::End),
        (Some(v), false) => match v.strip_prefix("time:") {
            Some(t) => Ok(Until::Time(
                parse_time(t).map_err(|e| format!("--until {v}: {e}"))?,
            )),
            None => Err(format!("--until {v}: expected end or time:<RFC 3339>")),
        },
    }
}

fn parse_time(text: &str) -> Result<i64, String> {
    humantime::parse_rfc3339_weak(text)
        .map(unix_ms)
        .map_err(|e| format!("not an RFC 3339 time: {e}"))
}

pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(values: &[&str]) -> Result<From, String> {
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
        assert!(from(&["middle"]).unwrap_err().contains("expected"));
        assert!(from(&["end", "0:1"]).is_err());
        assert!(from(&["time:yesterday"]).unwrap_err().contains("RFC 3339"));
        assert!(from(&["x:1"]).unwrap_err().contains("PARTITION:OFFSET"));
    }

    #[test]
    fn stops_parse_and_exclude_follow() {
        assert_eq!(parse_until(None, false), Ok(Until::End));
        assert_eq!(parse_until(None, true), Ok(Until::Follow));
        assert_eq!(
            parse_until(Some("time:1970-01-01T00:00:01Z"), false),
            Ok(Until::Time(1000))
        );
        assert!(parse_until(Some("end"), true).is_err());
    }
}
