//! `schema/event.schema.json` is produced from this crate's types (schemars, their doc
//! comments as descriptions), and this test fails when the committed file differs.
//! To write it again after changing a type:
//! `TIM_EVENT_WRITE_SCHEMA=1 cargo test -p tim-event schema`.
//!
//! What the types cannot say is added here, once: each type's envelope pins its
//! `type` to one name and its `data` to that type's data (the pairing `decode` reads
//! by), the envelope's constants and patterns, and `format: date-time` on every time
//! written as RFC 3339. The events never carry `null` (absent fields are left out),
//! so the optional fields' `null` alternative is dropped.

use schemars::generate::{Contract, SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{json, Map, Value};

use super::*;

fn generator() -> SchemaGenerator {
    let mut settings = SchemaSettings::draft2020_12();
    settings.contract = Contract::Serialize;
    settings.into_generator()
}

/// The envelope of `event_type`: one branch per type, no wildcard.
fn envelope(event_type: EventType, generator: &mut SchemaGenerator) -> Schema {
    use EventType as T;
    match event_type {
        T::MessageSent | T::MessageModified | T::MessagePreSend => {
            Envelope::<MessageSent>::json_schema(generator)
        }
        T::MessageWithdrawn => Envelope::<MessageWithdrawn>::json_schema(generator),
        T::MessageRead => Envelope::<MessageRead>::json_schema(generator),
        T::ConversationRead => Envelope::<ConversationRead>::json_schema(generator),
        T::AllRead => Envelope::<AllRead>::json_schema(generator),
        T::MessageExtensionChanged => Envelope::<MessageExtensionChanged>::json_schema(generator),
        T::GroupMessageSent => Envelope::<GroupMessageSent>::json_schema(generator),
        T::GroupMessageRecalled => Envelope::<GroupMessageRecalled>::json_schema(generator),
        T::GroupMessageRead => Envelope::<GroupMessageRead>::json_schema(generator),
        T::GroupMessageExtensionChanged => {
            Envelope::<GroupMessageExtensionChanged>::json_schema(generator)
        }
        T::UserStateChanged => Envelope::<UserStateChanged>::json_schema(generator),
        T::UserProfileChanged => Envelope::<UserProfileChanged>::json_schema(generator),
        T::UserFriendAdded
        | T::UserFriendDeleted
        | T::UserBlocklistAdded
        | T::UserBlocklistRemoved => Envelope::<UserRelationChanged>::json_schema(generator),
        T::GroupCreated | T::GroupTopicCreated => Envelope::<GroupCreated>::json_schema(generator),
        T::GroupMemberJoined | T::GroupMemberExited => {
            Envelope::<GroupMemberChanged>::json_schema(generator)
        }
        T::GroupInfoChanged | T::GroupTopicInfoChanged => {
            Envelope::<GroupInfoChanged>::json_schema(generator)
        }
        T::GroupOwnerChanged => Envelope::<GroupOwnerChanged>::json_schema(generator),
        T::GroupDestroyed | T::GroupTopicDestroyed => {
            Envelope::<GroupDestroyed>::json_schema(generator)
        }
        T::Callback => Envelope::<CallbackReceived>::json_schema(generator),
    }
}

/// `tim.c2c.message.sent` → `message_sent_event`, the names docs/asyncapi.yaml refers to.
fn definition_name(event_type: EventType) -> String {
    let name = event_type.as_str().trim_start_matches("tim.");
    let name = name
        .strip_prefix("c2c.")
        .or_else(|| name.strip_prefix("conversations."))
        .unwrap_or(name);
    format!("{}_event", name.replace('.', "_"))
}

fn produced() -> Value {
    let mut generator = generator();
    let mut defs = Map::new();
    let mut one_of = Vec::new();
    for &event_type in EventType::ALL {
        let mut schema = envelope(event_type, &mut generator).to_value();
        let properties = schema["properties"].as_object_mut().expect("an object");
        properties.insert("specversion".into(), json!({ "const": "1.0" }));
        properties.insert(
            "id".into(),
            json!({ "type": "string", "pattern": "^[0-9a-f]{32}$" }),
        );
        properties.insert(
            "source".into(),
            json!({ "type": "string", "pattern": "^/tim/[0-9]+$" }),
        );
        properties.insert("type".into(), json!({ "const": event_type.as_str() }));
        properties.insert(
            "datacontenttype".into(),
            json!({ "const": "application/json" }),
        );
        properties.insert("dataschema".into(), json!({ "const": DATA_SCHEMA }));
        let subject = subject(event_type);
        properties.insert("subject".into(), subject["schema"].clone());
        if subject["required"] == true {
            let required = schema["required"].as_array_mut().expect("a list");
            required.push(json!("subject"));
        }
        let name = definition_name(event_type);
        one_of.push(json!({ "$ref": format!("#/$defs/{name}") }));
        defs.insert(name, schema);
    }
    defs.extend(generator.take_definitions(true));
    let mut schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": DATA_SCHEMA,
        "title": "tim-kafka-bridge event",
        "description": "The value of every Kafka record the bridge produces: a CloudEvents 1.0 structured-mode JSON envelope. Produced from the tim-event crate's types; see docs/events.md.",
        "oneOf": one_of,
        "$defs": defs,
    });
    tidy(&mut schema);
    schema
}

/// No `null` alternatives; numeric `format`s become bounds (ajv's strict mode refuses
/// formats it does not know); `date-time` on RFC 3339 times.
fn tidy(value: &mut Value) {
    match value {
        Value::Object(object) => {
            object.values_mut().for_each(tidy);
            if let Some(Value::Array(types)) = object.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    object.insert("type".into(), only);
                }
            }
            if let Some(Value::Array(any_of)) = object.get_mut("anyOf") {
                any_of.retain(|s| s != &json!({ "type": "null" }));
                if let [Value::Object(only)] = any_of.as_slice() {
                    let only = only.clone();
                    object.remove("anyOf");
                    object.extend(only);
                }
            }
            match object.get("format").and_then(Value::as_str) {
                Some("date-time") | None => {}
                Some(format) => {
                    if format == "uint32" {
                        object.insert("maximum".into(), json!(u32::MAX));
                    }
                    object.remove("format");
                }
            }
            if let Some(Value::Object(properties)) = object.get_mut("properties") {
                for (name, property) in properties.iter_mut() {
                    let is_time =
                        name.ends_with("_rfc3339") || name == "received_at" || name == "time";
                    if is_time && property.get("type") == Some(&json!("string")) {
                        property["format"] = json!("date-time");
                    }
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(tidy),
        _ => {}
    }
}

/// The record's key, which is the event's `subject`: the keying rule of docs/events.md,
/// which the types do not carry.
fn subject(event_type: EventType) -> Value {
    use EventType as T;
    let (required, pattern) = match event_type {
        // Keyed by MsgKey when the callback has one, else by conversation (no subject).
        T::MessageSent | T::MessageModified | T::MessagePreSend => (false, None),
        // Keyed by MsgKey when the command has one.
        T::Callback => (false, None),
        T::MessageWithdrawn
        | T::MessageRead
        | T::ConversationRead
        | T::AllRead
        | T::MessageExtensionChanged
        | T::GroupMessageSent
        | T::GroupMessageRecalled => (true, None),
        T::UserStateChanged
        | T::UserProfileChanged
        | T::UserFriendAdded
        | T::UserFriendDeleted
        | T::UserBlocklistAdded
        | T::UserBlocklistRemoved => (true, Some("^user:")),
        T::GroupCreated
        | T::GroupMemberJoined
        | T::GroupMemberExited
        | T::GroupInfoChanged
        | T::GroupOwnerChanged
        | T::GroupDestroyed
        | T::GroupTopicCreated
        | T::GroupTopicInfoChanged
        | T::GroupTopicDestroyed => (true, Some("^group:")),
        T::GroupMessageRead | T::GroupMessageExtensionChanged => (true, Some("^group:.+:[0-9]+$")),
    };
    let mut schema = json!({ "type": "string" });
    if let Some(pattern) = pattern {
        schema["pattern"] = json!(pattern);
    }
    json!({ "required": required, "schema": schema })
}

#[test]
fn the_committed_schema_is_the_one_the_types_produce() {
    let text = serde_json::to_string_pretty(&produced()).unwrap() + "\n";
    if std::env::var_os("TIM_EVENT_WRITE_SCHEMA").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/event.schema.json");
        std::fs::write(path, &text).unwrap();
    }
    assert!(
        text == SCHEMA,
        "schema/event.schema.json differs from what the types produce; \
         write it again with `TIM_EVENT_WRITE_SCHEMA=1 cargo test -p tim-event schema`"
    );
}

#[test]
fn every_type_has_its_own_envelope_in_the_schema() {
    let schema = produced();
    assert_eq!(
        schema["oneOf"].as_array().unwrap().len(),
        EventType::ALL.len()
    );
    for &event_type in EventType::ALL {
        let envelope = &schema["$defs"][definition_name(event_type)];
        assert_eq!(envelope["properties"]["type"]["const"], event_type.as_str());
        assert_eq!(envelope["additionalProperties"], false);
    }
}
