//! A Tencent message element in the event's terms: each known element keeps
//! Tencent's `MsgContent` fields, renamed to snake_case (`tim_event::element`).

use serde_json::value::RawValue;
use serde_json::Value;

pub use tim_event::element::*;

use crate::tencent::element::TencentElement;
use crate::tencent::{field_path, without_values, Invalid};

/// The element in the event's terms; a known type with malformed content is an error
/// that names the field.
pub fn normalize(element: &TencentElement) -> Result<Element, Invalid> {
    fn content<T: serde::de::DeserializeOwned + Default>(
        raw: &Option<Box<RawValue>>,
    ) -> Result<T, Invalid> {
        match raw {
            None => Ok(T::default()),
            Some(raw) => serde_json::from_str(raw.get()).map_err(|_| {
                let de = &mut serde_json::Deserializer::from_str(raw.get());
                match serde_path_to_error::deserialize::<_, T>(de) {
                    Err(e) => {
                        let path = e.path().to_string();
                        Invalid::Field {
                            path: format!("MsgContent.{}", field_path(&path)),
                            reason: without_values(&e.into_inner().to_string()),
                        }
                    }
                    Ok(_) => Invalid::Field {
                        path: "MsgContent".into(),
                        reason: "cannot be read".into(),
                    },
                }
            }),
        }
    }
    Ok(match element.msg_type.as_str() {
        "TIMTextElem" => Element::Text(content(&element.msg_content)?),
        "TIMImageElem" => Element::Image(content(&element.msg_content)?),
        "TIMFileElem" => Element::File(content(&element.msg_content)?),
        "TIMSoundElem" => Element::Sound(content(&element.msg_content)?),
        "TIMVideoFileElem" => Element::Video(content(&element.msg_content)?),
        "TIMLocationElem" => Element::Location(content(&element.msg_content)?),
        "TIMFaceElem" => Element::Face(content(&element.msg_content)?),
        "TIMCustomElem" => Element::Custom(content(&element.msg_content)?),
        "TIMRelayElem" => Element::Relay(content(&element.msg_content)?),
        other => Element::Unknown {
            msg_type: other.to_owned(),
            content: match &element.msg_content {
                Some(raw) => serde_json::from_str(raw.get()).map_err(|e| Invalid::Field {
                    path: "MsgContent".into(),
                    reason: without_values(&e.to_string()),
                })?,
                None => Value::Null,
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn normalize(tencent: Value) -> Value {
        let el: TencentElement = serde_json::from_value(tencent).unwrap();
        serde_json::to_value(super::normalize(&el).unwrap()).unwrap()
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
        let err = super::normalize(&el).unwrap_err().to_string();
        assert!(err.starts_with("MsgContent.Size"), "{err}");
    }

    #[test]
    fn events_decode_back_into_the_same_elements() {
        let el: TencentElement = serde_json::from_value(
            json!({"MsgType":"TIMSoundElem","MsgContent":{"UUID":"x","Size":3}}),
        )
        .unwrap();
        let element = super::normalize(&el).unwrap();
        let back: Element =
            serde_json::from_str(&serde_json::to_string(&element).unwrap()).unwrap();
        assert_eq!(back, element);
    }
}
