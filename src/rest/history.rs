//! `v4/open_msg_svc/get_history` (../shared/tencent-rest.md §3c, from
//! cloud.tencent.com/document/product/269/1650): the files holding every C2C or every
//! group message of one Beijing-time hour, and their download.

use std::path::Path;

use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Uri};
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::client::{Rest, RestError};

const API: &str = "open_msg_svc/get_history";
/// The page's limit for this API.
const PER_SECOND: u32 = 10;

/// One file of an hour, as `get_history` lists it: sizes and MD5s before (`File…`)
/// and after (`Gzip…`) compression.
#[derive(Debug, Clone, Deserialize)]
pub struct ArchiveFile {
    #[serde(rename = "URL")]
    pub url: String,
    #[serde(rename = "FileSize")]
    pub file_size: u64,
    #[serde(rename = "FileMD5")]
    pub file_md5: String,
    #[serde(rename = "GzipSize")]
    pub gzip_size: u64,
    #[serde(rename = "GzipMD5")]
    pub gzip_md5: String,
}

/// What Tencent has for an hour.
#[derive(Debug)]
pub enum History {
    Files(Vec<ArchiveFile>),
    /// 1004: not made yet, or no message in that hour.
    NotReady,
    /// 1005: older than Tencent keeps files (7 days).
    Expired,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "File", default)]
    files: Vec<ArchiveFile>,
}

impl Rest {
    /// The files of `chat_type` (`C2C` or `Group`) for the Beijing hour `msg_time`
    /// (`YYYYMMDDHH`).
    pub async fn get_history(&self, chat_type: &str, msg_time: &str) -> Result<History, RestError> {
        let body = json!({ "ChatType": chat_type, "MsgTime": msg_time });
        match self.call::<Answer>(API, PER_SECOND, &body).await {
            Ok(answer) => Ok(History::Files(answer.files)),
            Err(RestError::Tencent { code: 1004, .. }) => Ok(History::NotReady),
            Err(RestError::Tencent { code: 1005, .. }) => Ok(History::Expired),
            Err(error) => Err(error),
        }
    }

    /// Downloads `file` into `to`, a chunk at a time.
    pub async fn download(&self, file: &ArchiveFile, to: &Path) -> Result<(), RestError> {
        let problem = |problem: String| RestError::Network {
            api: "download",
            problem,
        };
        let uri: Uri = file
            .url
            .parse()
            .map_err(|e| problem(format!("bad URL in get_history's answer: {e}")))?;
        let request = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .body(Full::default())
            .expect("a valid request");
        let answer = self
            .http()
            .request(request)
            .await
            .map_err(|e| problem(crate::outbound::with_causes(&e)))?;
        if !answer.status().is_success() {
            return Err(RestError::Status {
                api: "download",
                status: answer.status().as_u16(),
            });
        }
        let mut out = tokio::fs::File::create(to)
            .await
            .map_err(|e| problem(format!("cannot write {}: {e}", to.display())))?;
        let mut body = answer.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| problem(e.to_string()))?;
            if let Some(data) = frame.data_ref() {
                out.write_all(data)
                    .await
                    .map_err(|e| problem(format!("cannot write {}: {e}", to.display())))?;
            }
        }
        out.flush()
            .await
            .map_err(|e| problem(format!("cannot write {}: {e}", to.display())))
    }
}
