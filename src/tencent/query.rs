//! The callback URL's query: `SdkAppid`, `CallbackCommand`, `ClientIP`, `OptPlatform`,
//! and with authentication `Sign` and `RequestTime`. Tencent's pages spell the names
//! in several cases, so they are matched case-insensitively.

use super::invalid::Invalid;
use std::borrow::Cow;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct CallbackQuery {
    pub sdk_app_id: Option<String>,
    pub command: Option<String>,
    pub sign: Option<String>,
    pub request_time: Option<String>,
    pub client_ip: Option<String>,
    pub platform: Option<String>,
}

/// The parameters the bridge reads, by their canonical spelling.
const NAMES: [&str; 6] = [
    "SdkAppid",
    "CallbackCommand",
    "Sign",
    "RequestTime",
    "ClientIP",
    "OptPlatform",
];

impl CallbackQuery {
    /// A parameter given twice is refused rather than guessed at.
    pub fn parse(query: &str) -> Result<Self, Invalid> {
        let mut q = CallbackQuery::default();
        // Tencent's queries need no decoding: split them as they are, and decode only
        // when something is encoded (the same pairs either way).
        if query.bytes().any(|b| b == b'%' || b == b'+') {
            for (name, value) in form_urlencoded::parse(query.as_bytes()) {
                q.set(&name, value)?;
            }
        } else {
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                q.set(name, Cow::Borrowed(value))?;
            }
        }
        Ok(q)
    }

    fn set(&mut self, name: &str, value: Cow<str>) -> Result<(), Invalid> {
        let Some(i) = NAMES.iter().position(|n| n.eq_ignore_ascii_case(name)) else {
            return Ok(());
        };
        let slot = match i {
            0 => &mut self.sdk_app_id,
            1 => &mut self.command,
            2 => &mut self.sign,
            3 => &mut self.request_time,
            4 => &mut self.client_ip,
            _ => &mut self.platform,
        };
        if slot.is_some() {
            return Err(Invalid::RepeatedParameter(NAMES[i]));
        }
        *slot = Some(value.into_owned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_in_any_case() {
        for name in ["SdkAppid", "SDKAppID", "SdkAppId", "sdkappid"] {
            let q =
                CallbackQuery::parse(&format!("{name}=1400000000&callbackcommand=C2C.X")).unwrap();
            assert_eq!(q.sdk_app_id.as_deref(), Some("1400000000"), "{name}");
            assert_eq!(q.command.as_deref(), Some("C2C.X"));
        }
    }

    #[test]
    fn the_documented_query_parses_whole() {
        let q = CallbackQuery::parse(
            "SdkAppid=1400000000&CallbackCommand=C2C.CallbackAfterSendMsg&contenttype=json\
             &ClientIP=10.0.0.1&OptPlatform=iOS&RequestTime=1669872112&Sign=abc%20def",
        )
        .unwrap();
        assert_eq!(q.client_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(q.platform.as_deref(), Some("iOS"));
        assert_eq!(q.request_time.as_deref(), Some("1669872112"));
        assert_eq!(q.sign.as_deref(), Some("abc def"));
    }

    #[test]
    fn a_repeated_parameter_is_refused() {
        let err = CallbackQuery::parse("SdkAppid=1&sdkappid=2")
            .unwrap_err()
            .to_string();
        assert!(err.contains("SdkAppid"), "{err}");
    }
}
