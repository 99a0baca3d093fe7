//! Message elements. Each known element keeps Tencent's `MsgContent` fields, renamed
//! to snake_case (`ImageInfoArray` → `image_info_array`); the serde aliases read
//! Tencent's own names, so one type serves both the callback and the event.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::tencent::lenient::{field, number};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
        content: Value,
    },
}

macro_rules! element {
    ($name:ident { $($field:ident : $ty:ty = $tencent:literal;)* }) => {
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    #[serde(alias = "MsgList", default, skip_serializing_if = "Option::is_none")]
    pub msg_list: Option<Value>,
    #[serde(alias = "JsonMsgKey", default, skip_serializing_if = "Option::is_none")]
    pub json_msg_key: Option<String>,
}

/// One `MsgBody` item as Tencent sends it.
#[derive(Debug, Deserialize)]
pub struct TencentElement {
    #[serde(rename = "MsgType")]
    pub msg_type: String,
    #[serde(rename = "MsgContent", default)]
    pub msg_content: Option<Box<RawValue>>,
}

impl TencentElement {
    /// The element in the event's terms; a known type with malformed content is an error
    /// that names the field.
    pub fn normalize(&self) -> Result<Element, String> {
        fn content<T: serde::de::DeserializeOwned + Default>(
            raw: &Option<Box<RawValue>>,
        ) -> Result<T, String> {
            match raw {
                None => Ok(T::default()),
                Some(raw) => serde_json::from_str(raw.get()).map_err(|_| {
                    let de = &mut serde_json::Deserializer::from_str(raw.get());
                    match serde_path_to_error::deserialize::<_, T>(de) {
                        Err(e) => {
                            let path = e.path().to_string();
                            format!("MsgContent.{path}: {}", e.into_inner())
                        }
                        Ok(_) => "MsgContent cannot be read".into(),
                    }
                }),
            }
        }
        Ok(match self.msg_type.as_str() {
            "TIMTextElem" => Element::Text(content(&self.msg_content)?),
            "TIMImageElem" => Element::Image(content(&self.msg_content)?),
            "TIMFileElem" => Element::File(content(&self.msg_content)?),
            "TIMSoundElem" => Element::Sound(content(&self.msg_content)?),
            "TIMVideoFileElem" => Element::Video(content(&self.msg_content)?),
            "TIMLocationElem" => Element::Location(content(&self.msg_content)?),
            "TIMFaceElem" => Element::Face(content(&self.msg_content)?),
            "TIMCustomElem" => Element::Custom(content(&self.msg_content)?),
            "TIMRelayElem" => Element::Relay(content(&self.msg_content)?),
            other => Element::Unknown {
                msg_type: other.to_owned(),
                content: match &self.msg_content {
                    Some(raw) => {
                        serde_json::from_str(raw.get()).map_err(|e| format!("MsgContent: {e}"))?
                    }
                    None => Value::Null,
                },
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn normalize(tencent: Value) -> Value {
        let el: TencentElement = serde_json::from_value(tencent).unwrap();
        serde_json::to_value(el.normalize().unwrap()).unwrap()
    }

    #[test]
    fn text_is_kept_byte_for_byte() {
        let text = "红包 🧧 \u{1F469}\u{200D}\u{1F4BB} \"quoted\"\n";
        let out = normalize(json!({"MsgType":"TIMTextElem","MsgContent":{"Text": text}}));
        assert_eq!(out, json!({"type":"text","text": text}));
    }

    #[test]
    fn every_known_element_type_normalizes() {
        let cases = [
            (
                json!({"MsgType":"TIMLocationElem","MsgContent":{"Desc":"深圳","Latitude":22.5,"Longitude":"113.9"}}),
                json!({"type":"location","desc":"深圳","latitude":22.5,"longitude":113.9}),
            ),
            (
                json!({"MsgType":"TIMFaceElem","MsgContent":{"Index":1,"Data":"content"}}),
                json!({"type":"face","index":1,"data":"content"}),
            ),
            (
                json!({"MsgType":"TIMCustomElem","MsgContent":{"Data":"d","Desc":"x","Ext":"e","Sound":"s"}}),
                json!({"type":"custom","data":"d","desc":"x","ext":"e","sound":"s"}),
            ),
            (
                json!({"MsgType":"TIMSoundElem","MsgContent":{"Url":"u","UUID":"id","Size":"62351","Second":1,"Download_Flag":2}}),
                json!({"type":"sound","url":"u","uuid":"id","size":62351,"second":1,"download_flag":2}),
            ),
            (
                json!({"MsgType":"TIMImageElem","MsgContent":{"UUID":"1853095_D61040894AC3DE44CDFFFB3EC7EB720F","ImageFormat":1,
                    "ImageInfoArray":[{"Type":1,"Size":1853095,"Width":2448,"Height":3264,"URL":"https://x/1.jpg"}]}}),
                json!({"type":"image","uuid":"1853095_D61040894AC3DE44CDFFFB3EC7EB720F","image_format":1,
                    "image_info_array":[{"type":1,"size":1853095,"width":2448,"height":3264,"url":"https://x/1.jpg"}]}),
            ),
            (
                json!({"MsgType":"TIMFileElem","MsgContent":{"Url":"u","UUID":"f","FileSize":10,"FileName":"a.txt","Download_Flag":2}}),
                json!({"type":"file","url":"u","uuid":"f","file_size":10,"file_name":"a.txt","download_flag":2}),
            ),
            (
                json!({"MsgType":"TIMVideoFileElem","MsgContent":{"VideoUrl":"v","VideoUUID":"vu","VideoSize":1,"VideoSecond":5,
                    "VideoFormat":"mp4","VideoDownloadFlag":2,"ThumbUrl":"t","ThumbUUID":"tu","ThumbSize":2,"ThumbWidth":3,
                    "ThumbHeight":4,"ThumbFormat":"JPG","ThumbDownloadFlag":2}}),
                json!({"type":"video","video_url":"v","video_uuid":"vu","video_size":1,"video_second":5,"video_format":"mp4",
                    "video_download_flag":2,"thumb_url":"t","thumb_uuid":"tu","thumb_size":2,"thumb_width":3,
                    "thumb_height":4,"thumb_format":"JPG","thumb_download_flag":2}),
            ),
            (
                json!({"MsgType":"TIMRelayElem","MsgContent":{"Title":"chat","MsgNum":2,"CompatibleText":"upgrade",
                    "AbstractList":["a: hi"],"MsgList":[{"From_Account":"a","MsgBody":[]}]}}),
                json!({"type":"relay","title":"chat","msg_num":2,"compatible_text":"upgrade",
                    "abstract_list":["a: hi"],"msg_list":[{"From_Account":"a","MsgBody":[]}]}),
            ),
        ];
        for (tencent, event) in cases {
            assert_eq!(normalize(tencent.clone()), event, "{tencent}");
        }
    }

    #[test]
    fn an_old_sdks_sound_with_only_a_uuid_normalizes() {
        let out = normalize(json!({"MsgType":"TIMSoundElem","MsgContent":{"UUID":"only"}}));
        assert_eq!(out, json!({"type":"sound","uuid":"only"}));
    }

    #[test]
    fn unknown_element_types_are_kept_whole() {
        let content = json!({"Anything":[1,{"deep":true}],"文本":"保留"});
        let out = normalize(json!({"MsgType":"TIMBrandNewElem","MsgContent":content.clone()}));
        assert_eq!(
            out,
            json!({"type":"unknown","msg_type":"TIMBrandNewElem","content":content})
        );
    }

    #[test]
    fn unknown_fields_inside_known_elements_are_ignored() {
        let out = normalize(json!({"MsgType":"TIMTextElem","MsgContent":{"Text":"hi","Future":1}}));
        assert_eq!(out, json!({"type":"text","text":"hi"}));
    }

    #[test]
    fn a_malformed_known_element_names_its_field() {
        let el: TencentElement =
            serde_json::from_value(json!({"MsgType":"TIMSoundElem","MsgContent":{"Size":"big"}}))
                .unwrap();
        let err = el.normalize().unwrap_err();
        assert!(err.starts_with("MsgContent.Size"), "{err}");
    }

    #[test]
    fn events_decode_back_into_the_same_elements() {
        let el: TencentElement = serde_json::from_value(
            json!({"MsgType":"TIMSoundElem","MsgContent":{"UUID":"x","Size":3}}),
        )
        .unwrap();
        let element = el.normalize().unwrap();
        let back: Element =
            serde_json::from_str(&serde_json::to_string(&element).unwrap()).unwrap();
        assert_eq!(back, element);
    }
}
