//! One entry point for the fuzzer (`fuzz/`) and for the test that replays its corpus:
//! the query string, a newline, then the body, through [`super::admit`] with two apps
//! (one signed with [`TOKEN`], one unsigned so the fuzzer reaches the body parsers).

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use crate::settings::{Admission, Config, Settings};
use crate::tencent::CallbackQuery;

pub const SIGNED_APP: u64 = 1_400_000_001;
pub const UNSIGNED_APP: u64 = 1_400_000_002;
pub const TOKEN: &str = "fuzz-token-0123456789";
/// The clock the checks run at, so signed corpus entries stay valid.
pub const NOW_SECS: u64 = 1_700_000_000;

fn settings() -> &'static Admission {
    static SETTINGS: OnceLock<Admission> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        let mut settings = Settings::from_toml(&format!(
            "forward_other_commands = true\npublish_before_callbacks = true\nallow_unsigned = true\n\
             [[apps]]\nsdk_app_id = {SIGNED_APP}\ntokens = [\"{TOKEN}\"]\n\
             [[apps]]\nsdk_app_id = {UNSIGNED_APP}\n"
        ))
        .expect("the fuzzing settings parse");
        settings.kafka.brokers = Some("unused:9092".into());
        Config::try_from(settings)
            .expect("the fuzzing settings are valid")
            .admission
    })
}

/// Runs one input and panics if an invariant breaks: a refusal is a 4xx with a reason
/// and Tencent's body; every event is a JSON object with the envelope's fields, and a
/// key is never empty.
pub fn check_one(input: &[u8]) {
    let split = input
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(input.len());
    let Ok(query) = std::str::from_utf8(&input[..split]) else {
        return; // a URI's query is text; hyper refuses anything else before we see it
    };
    let body = input.get(split + 1..).unwrap_or(&[]);
    let received_at = UNIX_EPOCH + Duration::from_secs(NOW_SECS);
    match super::admit(
        settings(),
        CallbackQuery::parse(query),
        body,
        NOW_SECS,
        received_at,
    ) {
        Ok(admitted) => {
            for event in &admitted.events {
                assert!(
                    event.key.as_ref().is_none_or(|k| !k.is_empty()),
                    "an empty key"
                );
                let value: serde_json::Value =
                    serde_json::from_slice(&event.payload).expect("the payload is JSON");
                for field in ["specversion", "id", "type", "source", "time", "data"] {
                    assert!(value.get(field).is_some(), "the event has no `{field}`");
                }
                assert_eq!(value["id"].as_str(), Some(event.id.as_str()));
            }
        }
        Err(error) => {
            let status = error.status();
            assert!(status.is_client_error(), "{status} for bad input");
            assert!(!error.reason().is_empty());
            let _ = error.into_response();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn inputs(dir: &str) -> Vec<(String, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
            .collect()
    }

    #[test]
    fn every_corpus_input_and_every_past_crash_keeps_the_invariants() {
        let corpus = inputs("fuzz/corpus/request");
        let regressions = inputs("fuzz/regressions");
        assert!(corpus.len() >= 1_000, "the fuzzer's corpus is missing");
        for (name, input) in corpus.iter().chain(&regressions) {
            let outcome = std::panic::catch_unwind(|| check_one(input));
            assert!(outcome.is_ok(), "{name} broke an invariant");
        }
    }

    #[test]
    fn every_seed_is_admitted_signed_and_unsigned() {
        let seeds: Vec<_> = inputs("fuzz/corpus/request")
            .into_iter()
            .filter(|(name, _)| name.contains("/seed-"))
            .collect();
        assert_eq!(seeds.len(), 28, "fuzz/seed_corpus.py writes 28 seeds");
        for (name, input) in seeds {
            let split = input.iter().position(|&b| b == b'\n').unwrap();
            let query = CallbackQuery::parse(std::str::from_utf8(&input[..split]).unwrap());
            let received_at = UNIX_EPOCH + Duration::from_secs(NOW_SECS);
            let admitted = super::super::admit(
                settings(),
                query,
                &input[split + 1..],
                NOW_SECS,
                received_at,
            )
            .unwrap_or_else(|e| panic!("{name}: {}", e.reason()));
            assert!(!admitted.events.is_empty(), "{name} published nothing");
            assert_eq!(
                admitted.replay_key.is_some(),
                name.ends_with("signed") && !name.ends_with("unsigned"),
                "{name}"
            );
        }
    }
}
