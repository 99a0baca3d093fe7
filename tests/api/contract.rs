//! The event contract's two descriptions, the JSON Schema and the AsyncAPI document,
//! parse and agree; the example in docs/ matches the settings' defaults.

use std::collections::BTreeSet;

use serde_json::Value;
use tim_kafka_bridge::settings::Settings;
use yaml_rust2::{Yaml, YamlLoader};

use crate::helpers::*;

fn asyncapi() -> Yaml {
    let text = include_str!("../../docs/asyncapi.yaml");
    YamlLoader::load_from_str(text)
        .expect("docs/asyncapi.yaml parses")
        .remove(0)
}

fn schema() -> Value {
    serde_json::from_str(tim_event::SCHEMA).expect("the JSON Schema parses")
}

#[test]
fn the_asyncapi_payloads_are_exactly_the_schemas_event_definitions() {
    let doc = asyncapi();
    assert_eq!(doc["asyncapi"].as_str(), Some("3.0.0"));
    let schema = schema();
    let defined: BTreeSet<String> = schema["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["$ref"]
                .as_str()
                .unwrap()
                .trim_start_matches("#/$defs/")
                .to_owned()
        })
        .collect();
    let mut referenced = BTreeSet::new();
    for (_, message) in doc["components"]["messages"].as_hash().unwrap() {
        let reference = message["payload"]["$ref"].as_str().unwrap();
        let name = reference
            .strip_prefix("../crates/tim-event/schema/event.schema.json#/$defs/")
            .unwrap_or_else(|| panic!("{reference} does not point into the JSON Schema"));
        assert!(
            schema["$defs"].get(name).is_some(),
            "{name} is not defined in the schema"
        );
        let event_type = &schema["$defs"][name]["properties"]["type"]["const"];
        assert_eq!(message["name"].as_str(), event_type.as_str(), "{name}");
        referenced.insert(name.to_owned());
    }
    assert_eq!(referenced, defined, "every event type, and only those");
}

#[test]
fn the_asyncapi_channels_are_the_default_topics_and_their_messages_exist() {
    let doc = asyncapi();
    let settings = Settings::default();
    let addresses: BTreeSet<&str> = doc["channels"]
        .as_hash()
        .unwrap()
        .values()
        .map(|c| c["address"].as_str().unwrap())
        .collect();
    let topics = [
        &settings.kafka.topic,
        &settings.kafka.group_topic,
        &settings.kafka.user_topic,
        &settings.kafka.group_events_topic,
        &settings.kafka.other_topic,
    ];
    assert_eq!(addresses, topics.iter().map(|t| t.as_str()).collect());
    for channel in doc["channels"].as_hash().unwrap().values() {
        for (_, message) in channel["messages"].as_hash().unwrap() {
            let name = message["$ref"]
                .as_str()
                .unwrap()
                .trim_start_matches("#/components/messages/");
            assert!(!doc["components"]["messages"][name].is_badvalue(), "{name}");
        }
    }
}

#[tokio::test]
async fn an_event_read_back_matches_its_asyncapi_message() {
    let app = spawn_app().await;
    let body = r#"{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"a","To_Account":"b","MsgKey":"contract"}"#;
    assert_eq!(
        app.callback("C2C.CallbackAfterSendMsg", body).await.status,
        200
    );

    let record = read_records(&app.topic, 1).await.remove(0);
    let doc = asyncapi();
    let message = &doc["components"]["messages"]["messageSent"];
    assert_eq!(record.value["type"].as_str(), message["name"].as_str());
    assert_eq!(
        Some(record.headers["content-type"].as_str()),
        message["contentType"].as_str()
    );
    let decoded =
        tim_kafka_bridge::event::decode(serde_json::to_vec(&record.value).unwrap().as_slice())
            .unwrap();
    assert!(matches!(
        decoded.data,
        tim_kafka_bridge::event::Data::Sent(_)
    ));
}

/// docs/events.md describes the contract: it names every event type with the command it
/// comes from, every envelope attribute and every field any type's data can carry.
#[test]
fn the_event_docs_name_every_type_command_attribute_and_field_the_schema_has() {
    let doc = include_str!("../../docs/events.md");
    for event_type in tim_event::EventType::ALL {
        assert!(
            doc.contains(&format!("`{event_type}`")),
            "docs/events.md does not name the type {event_type}"
        );
    }
    for typed in tim_kafka_bridge::tencent::command::Typed::ALL {
        assert!(
            doc.contains(&format!("`{}`", typed.as_str())),
            "docs/events.md does not name the command {}",
            typed.as_str()
        );
    }
    let schema = schema();
    let defs = &schema["$defs"];
    let resolve = |s: &Value| match s["$ref"].as_str() {
        Some(r) => defs[r.trim_start_matches("#/$defs/")].clone(),
        None => s.clone(),
    };
    let mut named = BTreeSet::new();
    for envelope in schema["oneOf"].as_array().unwrap().iter().map(resolve) {
        let data = resolve(&envelope["properties"]["data"]);
        for (field, _) in envelope["properties"]
            .as_object()
            .unwrap()
            .iter()
            .chain(data["properties"].as_object().unwrap())
        {
            named.insert(field.clone());
        }
    }
    let missing: Vec<&String> = named
        .iter()
        .filter(|field| !doc.contains(&format!("`{field}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/events.md does not describe {missing:?}"
    );
}
