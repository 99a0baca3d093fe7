//! Message elements. Each known element keeps Tencent's `MsgContent` fields, renamed
//! to snake_case (`ImageInfoArray` → `image_info_array`); the serde aliases read
//! Tencent's own names, so one type serves both the callback and the event.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::lenient::{field, number};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Element {
    Text(Text),
    Image(Image),
    File(File),
    Sound(Sound),
    Video(Video),
    Location(Location),
    Face(Face),
    Custom(Custom),
    Relay(Relay),
    /// An element type the bridge does not know yet, kept as Tencent sent it.
    Unknown {
        msg_type: String,
        /// `MsgContent` as Tencent sent it.
        content: Value,
    },
}

macro_rules! element {
    ($name:ident { $($field:ident : $ty:ty = $tencent:literal;)* }) => {
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
        pub struct $name {
            $(
                #[serde(alias = $tencent, default, deserialize_with = "field", skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }
    };
}

element!(Text { text: String = "Text"; });
element!(Location {
    desc: String = "Desc";
    latitude: f64 = "Latitude";
    longitude: f64 = "Longitude";
});
element!(Face { index: i64 = "Index"; data: String = "Data"; });
element!(Custom { data: String = "Data"; desc: String = "Desc"; ext: String = "Ext"; sound: String = "Sound"; });
element!(Sound {
    url: String = "Url";
    uuid: String = "UUID";
    size: u64 = "Size";
    second: u64 = "Second";
    download_flag: i64 = "Download_Flag";
});
element!(File {
    url: String = "Url";
    uuid: String = "UUID";
    file_size: u64 = "FileSize";
    file_name: String = "FileName";
    download_flag: i64 = "Download_Flag";
});
element!(Video {
    video_url: String = "VideoUrl";
    video_uuid: String = "VideoUUID";
    video_size: u64 = "VideoSize";
    video_second: u64 = "VideoSecond";
    video_format: String = "VideoFormat";
    video_download_flag: i64 = "VideoDownloadFlag";
    thumb_url: String = "ThumbUrl";
    thumb_uuid: String = "ThumbUUID";
    thumb_size: u64 = "ThumbSize";
    thumb_width: u64 = "ThumbWidth";
    thumb_height: u64 = "ThumbHeight";
    thumb_format: String = "ThumbFormat";
    thumb_download_flag: i64 = "ThumbDownloadFlag";
});
element!(ImageInfo {
    r#type: i64 = "Type";
    size: u64 = "Size";
    width: u64 = "Width";
    height: u64 = "Height";
    url: String = "URL";
});

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct Image {
    #[serde(alias = "UUID", default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(
        alias = "ImageFormat",
        default,
        deserialize_with = "number",
        skip_serializing_if = "Option::is_none"
    )]
    pub image_format: Option<i64>,
    #[serde(
        alias = "ImageInfoArray",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub image_info_array: Option<Vec<ImageInfo>>,
}

/// A merged-forward message. Its nested messages are kept as Tencent sent them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct Relay {
    #[serde(alias = "Title", default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(
        alias = "MsgNum",
        default,
        deserialize_with = "number",
        skip_serializing_if = "Option::is_none"
    )]
    pub msg_num: Option<u64>,
    #[serde(
        alias = "CompatibleText",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub compatible_text: Option<String>,
    #[serde(
        alias = "AbstractList",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub abstract_list: Option<Value>,
    /// Nested messages, as Tencent sent them.
    #[serde(alias = "MsgList", default, skip_serializing_if = "Option::is_none")]
    pub msg_list: Option<Value>,
    #[serde(alias = "JsonMsgKey", default, skip_serializing_if = "Option::is_none")]
    pub json_msg_key: Option<String>,
}
