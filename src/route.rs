//! Which topic a callback's events go to: the one place that decides it (policy),
//! above the delivery core that only carries records (mechanism).

use std::collections::BTreeMap;

use crate::dedup::Fingerprint;
use crate::delivery::{now_ms, Record};
use crate::event::Normalized;
use crate::settings::KafkaConfig;
use crate::tencent::Family;

/// What a callback that passed every check asks the bridge to do.
#[derive(Debug)]
pub struct Admitted {
    pub sdk_app_id: u64,
    pub command: String,
    /// Which topic family the events go to, from the typed callback.
    pub family: Family,
    /// Empty when the callback is answered without publishing anything.
    pub events: Vec<Normalized>,
    /// Identifies a signed request, to recognise it when it is sent again.
    pub replay_key: Option<Fingerprint>,
    /// The answer when it is more than the plain OK (a before-callback's allow shape).
    pub answer: Option<Vec<u8>>,
}

/// The topics of one configuration: one-to-one messages, group messages, users, the
/// group lifecycle, every other command, and per-command overrides.
#[derive(Debug, Clone)]
pub struct Routes {
    c2c: String,
    group: String,
    users: String,
    group_events: String,
    other: String,
    by_command: BTreeMap<String, String>,
    all: Vec<String>,
}

impl Routes {
    pub fn new(kafka: &KafkaConfig) -> Self {
        let name = |t: &crate::settings::TopicName| t.as_str().to_owned();
        let mut all = vec![
            name(&kafka.topic),
            name(&kafka.group_topic),
            name(&kafka.user_topic),
            name(&kafka.group_events_topic),
        ];
        if kafka.publishes_other {
            all.push(name(&kafka.other_topic));
        }
        all.extend(kafka.command_topics.values().map(name));
        all.sort();
        all.dedup();
        Self {
            c2c: name(&kafka.topic),
            group: name(&kafka.group_topic),
            users: name(&kafka.user_topic),
            group_events: name(&kafka.group_events_topic),
            other: name(&kafka.other_topic),
            by_command: kafka
                .command_topics
                .iter()
                .map(|(command, topic)| (command.clone(), name(topic)))
                .collect(),
            all,
        }
    }

    /// The topic a callback's events go to: its command's override, else its family's.
    pub fn topic_for(&self, family: Family, callback_command: &str) -> &str {
        if let Some(topic) = self.by_command.get(callback_command) {
            return topic;
        }
        match family {
            Family::C2c => &self.c2c,
            Family::Group => &self.group,
            Family::Users => &self.users,
            Family::GroupEvents => &self.group_events,
            Family::Other => &self.other,
        }
    }

    /// Every topic this configuration may publish to, sorted.
    pub fn topics(&self) -> &[String] {
        &self.all
    }

    /// The admitted callback's events as records for its topic, in the callback's order.
    pub fn route(&self, admitted: Admitted) -> Vec<Record> {
        let topic = self.topic_for(admitted.family, &admitted.command);
        let accepted_at_ms = now_ms();
        admitted
            .events
            .into_iter()
            .map(|e| Record {
                topic: topic.to_owned(),
                key: e.key,
                payload: e.payload,
                command: admitted.command.clone(),
                sdk_app_id: admitted.sdk_app_id,
                accepted_at_ms,
                trace: None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;
    use crate::tencent::{command, Callback};

    fn routes(settings: &Settings) -> Routes {
        let mut settings = settings.clone();
        settings.kafka.brokers = Some("kafka:9092".into());
        Routes::new(&KafkaConfig::try_from(&settings).unwrap())
    }

    /// The topic `routes` gives the callback in a fixture file (its command from its body).
    fn topic_of<'r>(routes: &'r Routes, fixture: &str) -> &'r str {
        let path = format!("{}/tests/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
        let body = std::fs::read(&path).unwrap();
        let callback = Callback::parse(None, &body, true).unwrap();
        routes.topic_for(callback.family(), callback.command())
    }

    #[test]
    fn a_messages_story_shares_a_topic_groups_have_theirs_and_others_go_to_the_other_topic() {
        let routes = routes(&Settings::default());
        for (fixture, topic) in [
            ("seed_000_send.json", "tim.c2c.messages"),
            ("seed_003_withdraw.json", "tim.c2c.messages"),
            ("commands/group_read_receipt.json", "tim.group.messages"),
            ("commands/group_msg_extension.json", "tim.group.messages"),
            ("commands/state_change.json", "tim.users"),
            ("commands/portrait_set.json", "tim.users"),
            ("commands/friend_add.json", "tim.users"),
            ("commands/blacklist_delete.json", "tim.users"),
            ("commands/group_member_join.json", "tim.group.events"),
            ("commands/topic_destroyed.json", "tim.group.events"),
            ("commands/before_send_group_msg.json", "tim.callbacks.other"),
            ("commands/prev_friend_add.json", "tim.callbacks.other"),
        ] {
            assert_eq!(topic_of(&routes, fixture), topic, "{fixture}");
        }
        let full = br#"{"CallbackCommand":"Group.CallbackAfterGroupFull","GroupId":"@TGS#1"}"#;
        let callback = Callback::parse(None, full, false).unwrap();
        assert_eq!(
            routes.topic_for(callback.family(), callback.command()),
            "tim.callbacks.other"
        );
    }

    #[test]
    fn a_command_topic_overrides_its_family_and_is_listed() {
        let mut settings = Settings::default();
        settings
            .kafka
            .command_topics
            .insert(command::AFTER_MSG_WITHDRAW.into(), "recalls".into());
        let routes = routes(&settings);
        assert_eq!(topic_of(&routes, "seed_003_withdraw.json"), "recalls");
        assert_eq!(topic_of(&routes, "seed_000_send.json"), "tim.c2c.messages");
        assert!(routes.topics().contains(&"recalls".to_owned()));
    }
}
