//! A message element as Tencent sends it; `event::element` turns it into the event's.

use serde::Deserialize;
use serde_json::value::RawValue;

/// One `MsgBody` item as Tencent sends it.
#[derive(Debug, Deserialize)]
pub struct TencentElement {
    #[serde(rename = "MsgType")]
    pub msg_type: String,
    #[serde(rename = "MsgContent", default)]
    pub msg_content: Option<Box<RawValue>>,
}
