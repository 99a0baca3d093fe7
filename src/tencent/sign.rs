//! Callback authentication: `Sign = hex(SHA-256(token + RequestTime))`.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::settings::Secret;

#[derive(Debug, PartialEq, Eq)]
pub enum SignError {
    Missing(&'static str),
    BadRequestTime,
    /// RequestTime is `off_by` seconds from the server's clock; `allowed` is the most taken.
    Skewed {
        off_by: u64,
        allowed: u64,
    },
    Mismatch,
}

impl SignError {
    pub fn reason(&self) -> String {
        match self {
            SignError::Missing(name) => format!("{name} is missing from the query"),
            SignError::BadRequestTime => "RequestTime is not unix seconds".into(),
            SignError::Skewed { off_by, allowed } => format!(
                "RequestTime is {off_by} s from the server's clock; at most {allowed} s either way is taken (request_time_skew_secs): check the clocks (NTP)"
            ),
            SignError::Mismatch => "Sign does not match".into(),
        }
    }
}

pub fn sign(token: &str, request_time: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(token.as_bytes());
    hasher.update(request_time.as_bytes());
    hasher.finalize().into()
}

pub fn sign_hex(token: &str, request_time: &str) -> String {
    hex::encode(sign(token, request_time))
}

/// Checks a request against any of the app's tokens, at `now` (unix seconds).
pub fn verify(
    tokens: &[Secret],
    sign_param: Option<&str>,
    request_time: Option<&str>,
    now: u64,
    skew_secs: u64,
) -> Result<[u8; 32], SignError> {
    let request_time = request_time.ok_or(SignError::Missing("RequestTime"))?;
    let given = sign_param.ok_or(SignError::Missing("Sign"))?;
    let at: u64 = request_time
        .parse()
        .map_err(|_| SignError::BadRequestTime)?;
    if at.abs_diff(now) > skew_secs {
        return Err(SignError::Skewed {
            off_by: at.abs_diff(now),
            allowed: skew_secs,
        });
    }
    let mut given_bytes = [0u8; 32];
    if hex::decode_to_slice(given, &mut given_bytes).is_err() {
        return Err(SignError::Mismatch);
    }
    let matched = tokens.iter().fold(0u8, |acc, token| {
        acc | sign(token.expose(), request_time)
            .ct_eq(&given_bytes)
            .unwrap_u8()
    });
    if matched == 1 {
        Ok(given_bytes)
    } else {
        Err(SignError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "17773bc39a671d7b9aa835458704d2a6db81360a5940292b587d6d760d484061";

    fn tokens(t: &[&str]) -> Vec<Secret> {
        t.iter().map(|t| Secret::new(*t)).collect()
    }

    fn example_bytes() -> [u8; 32] {
        let mut bytes = [0; 32];
        hex::decode_to_slice(EXAMPLE, &mut bytes).unwrap();
        bytes
    }

    #[test]
    fn an_upper_case_sign_is_the_same_signature() {
        let upper = EXAMPLE.to_ascii_uppercase();
        let t = tokens(&["xxxxyyyy"]);
        assert_eq!(
            verify(&t, Some(&upper), Some("1669872112"), 1669872112, 60),
            verify(&t, Some(EXAMPLE), Some("1669872112"), 1669872112, 60)
        );
    }

    #[test]
    fn tencents_published_example_signs_as_published() {
        assert_eq!(sign_hex("xxxxyyyy", "1669872112"), EXAMPLE);
    }

    #[test]
    fn the_published_example_verifies() {
        let now = 1669872112;
        assert_eq!(
            verify(
                &tokens(&["xxxxyyyy"]),
                Some(EXAMPLE),
                Some("1669872112"),
                now,
                60
            ),
            Ok(example_bytes())
        );
    }

    #[test]
    fn either_of_two_tokens_verifies_during_a_rotation() {
        let t = tokens(&["old-token", "xxxxyyyy"]);
        assert_eq!(
            verify(&t, Some(EXAMPLE), Some("1669872112"), 1669872112, 60),
            Ok(example_bytes())
        );
    }

    #[test]
    fn the_skew_bound_holds_at_both_edges() {
        let t = tokens(&["xxxxyyyy"]);
        let at = 1669872112;
        for now in [at - 60, at + 60] {
            assert_eq!(
                verify(&t, Some(EXAMPLE), Some("1669872112"), now, 60),
                Ok(example_bytes()),
                "now={now}"
            );
        }
        for now in [at - 61, at + 61] {
            assert_eq!(
                verify(&t, Some(EXAMPLE), Some("1669872112"), now, 60),
                Err(SignError::Skewed {
                    off_by: 61,
                    allowed: 60
                })
            );
        }
    }

    #[test]
    fn a_wrong_token_or_garbage_sign_is_a_mismatch() {
        let now = 1669872112;
        let wrong = tokens(&["other"]);
        assert_eq!(
            verify(&wrong, Some(EXAMPLE), Some("1669872112"), now, 60),
            Err(SignError::Mismatch)
        );
        let right = tokens(&["xxxxyyyy"]);
        assert_eq!(
            verify(&right, Some("zz"), Some("1669872112"), now, 60),
            Err(SignError::Mismatch)
        );
    }

    #[test]
    fn missing_parameters_are_named() {
        let t = tokens(&["xxxxyyyy"]);
        assert_eq!(
            verify(&t, Some(EXAMPLE), None, 0, 60),
            Err(SignError::Missing("RequestTime"))
        );
        assert_eq!(
            verify(&t, None, Some("1"), 0, 60),
            Err(SignError::Missing("Sign"))
        );
        assert_eq!(
            verify(&t, Some(EXAMPLE), Some("soon"), 0, 60),
            Err(SignError::BadRequestTime)
        );
    }
}
