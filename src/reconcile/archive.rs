//! The hourly history file `get_history` lists (../shared/tencent-rest.md §3c, from
//! cloud.tencent.com/document/product/269/1650): gzip of a JSON document written one
//! message per line — a header line `{"SdkAppId":…,"ChatType":…,"MsgTime":…,"MsgList":[`,
//! then each message on its own line ending in `,`, then `]}`. Read as a stream, line
//! by line, so a file of hundreds of MB is never whole in memory; the sizes and MD5s
//! `get_history` gave are checked on the way.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use md5::{Digest, Md5};
use serde::Deserialize;
use serde_json::value::RawValue;

/// One archived message. The archive spells the time `MsgTimestamp`; a C2C message
/// has `To_Account` and `MsgRandom`, a group message `GroupId` and no `MsgRandom`.
#[derive(Debug, Deserialize)]
pub struct Archived {
    #[serde(rename = "From_Account", default)]
    pub from: String,
    #[serde(rename = "To_Account")]
    pub to: Option<String>,
    #[serde(rename = "GroupId")]
    pub group_id: Option<String>,
    #[serde(rename = "MsgTimestamp")]
    pub time: u64,
    #[serde(rename = "MsgSeq")]
    pub seq: u64,
    #[serde(rename = "MsgRandom")]
    pub random: Option<u64>,
    #[serde(rename = "MsgBody")]
    pub body: Option<Box<RawValue>>,
    #[serde(rename = "CloudCustomData")]
    pub cloud_custom_data: Option<String>,
}

/// What reading a file found besides its messages.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Found {
    pub messages: u64,
    /// Line numbers (1-based) of the lines that are not a message.
    pub unreadable: Vec<u64>,
}

/// Reads the messages of `lines`, handing each to `each`; an unreadable line is noted
/// and the rest goes on.
pub fn messages(lines: impl BufRead, mut each: impl FnMut(Archived)) -> std::io::Result<Found> {
    let mut found = Found::default();
    for (number, line) in lines.split(b'\n').enumerate() {
        let line = line?;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim();
        if text.is_empty() || text == "]}" || text.ends_with("\"MsgList\":[") {
            continue;
        }
        let message = text.strip_suffix(',').unwrap_or(text);
        match serde_json::from_str::<Archived>(message) {
            Ok(archived) => {
                found.messages += 1;
                each(archived);
            }
            Err(_) => found.unreadable.push(number as u64 + 1),
        }
    }
    Ok(found)
}

/// A reader that counts and hashes what passes through it.
pub struct Checked<R> {
    inner: R,
    md5: Md5,
    size: u64,
}

impl<R: Read> Checked<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            md5: Md5::new(),
            size: 0,
        }
    }

    /// The size and the MD5 (hex) of what was read.
    pub fn finish(self) -> (u64, String) {
        (self.size, hex::encode(self.md5.finalize()))
    }
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.md5.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// Checks a downloaded gzip file against `gzip` (size, MD5), then what it holds
/// against `plain`, before anything of it is used: a file that differs from what
/// `get_history` said publishes nothing.
pub fn verify(path: &Path, gzip: (u64, &str), plain: (u64, &str)) -> Result<(), FileProblem> {
    let mut whole = Checked::new(File::open(path).map_err(FileProblem::Io)?);
    std::io::copy(&mut whole, &mut std::io::sink()).map_err(FileProblem::Io)?;
    matches("GzipSize/GzipMD5", gzip, whole.finish())?;
    let file = File::open(path).map_err(FileProblem::Io)?;
    let mut content = Checked::new(flate2::read::GzDecoder::new(BufReader::new(file)));
    std::io::copy(&mut content, &mut std::io::sink()).map_err(FileProblem::Io)?;
    matches("FileSize/FileMD5", plain, content.finish())
}

/// Reads the messages of a verified gzip file, handing each to `each`.
pub fn read_file(path: &Path, each: impl FnMut(Archived)) -> Result<Found, FileProblem> {
    let file = File::open(path).map_err(FileProblem::Io)?;
    let content = flate2::read::GzDecoder::new(BufReader::new(file));
    messages(BufReader::with_capacity(1 << 16, content), each).map_err(FileProblem::Io)
}

fn matches(
    what: &'static str,
    expected: (u64, &str),
    found: (u64, String),
) -> Result<(), FileProblem> {
    if found.0 == expected.0 && found.1.eq_ignore_ascii_case(expected.1) {
        return Ok(());
    }
    Err(FileProblem::Mismatch {
        what,
        expected: format!("{} bytes, {}", expected.0, expected.1),
        found: format!("{} bytes, {}", found.0, found.1),
    })
}

#[derive(Debug)]
pub enum FileProblem {
    Io(std::io::Error),
    Mismatch {
        what: &'static str,
        expected: String,
        found: String,
    },
}

impl std::fmt::Display for FileProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileProblem::Io(error) => write!(f, "cannot read the file: {error}"),
            FileProblem::Mismatch {
                what,
                expected,
                found,
            } => write!(
                f,
                "{what} do not match: get_history said {expected}, the file has {found}"
            ),
        }
    }
}

impl std::error::Error for FileProblem {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page's sample, as a file has it.
    const C2C: &str = concat!(
        "{\"SdkAppId\":1104620500,\"ChatType\":\"C2C\",\"MsgTime\":\"2015120121\",\"MsgList\":[\n",
        "{\"From_Account\":\"peakerdong\",\"To_Account\":\"qiyueliuhuo2018\",\"MsgTimestamp\":1448974806,\"MsgSeq\":3452069198,\"MsgRandom\":45838,\"MsgBody\":[{\"MsgType\":\"TIMTextElem\",\"MsgContent\":{\"Text\":\"四等分\"}}]},\n",
        "not a message,\n",
        "{\"From_Account\":\"a\",\"To_Account\":\"b\",\"MsgTimestamp\":1448974807,\"MsgSeq\":1,\"MsgRandom\":2,\"MsgBody\":[]}\n",
        "]}\n",
    );

    #[test]
    fn the_pages_sample_reads_as_messages_and_an_unreadable_line_is_noted_by_number() {
        let mut read = Vec::new();
        let found = messages(C2C.as_bytes(), |m| read.push(m)).unwrap();
        assert_eq!(found.messages, 2);
        assert_eq!(found.unreadable, [3]);
        assert_eq!(read[0].from, "peakerdong");
        assert_eq!(read[0].seq, 3452069198);
        assert_eq!(read[0].random, Some(45838));
        assert_eq!(read[0].time, 1448974806);
    }

    #[test]
    fn a_file_whose_checksums_differ_from_get_historys_is_refused_naming_which() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(C2C.as_bytes()).unwrap();
        let gzipped = gz.finish().unwrap();
        std::fs::write(&path, &gzipped).unwrap();
        let gzip_md5 = hex::encode(Md5::digest(&gzipped));
        let plain_md5 = hex::encode(Md5::digest(C2C.as_bytes()));
        let gzip = (gzipped.len() as u64, gzip_md5.as_str());
        let plain = (C2C.len() as u64, plain_md5.as_str());
        verify(&path, gzip, plain).unwrap();
        assert_eq!(read_file(&path, |_| {}).unwrap().messages, 2);
        let wrong = verify(&path, (gzip.0, "00"), plain).unwrap_err();
        assert!(wrong.to_string().contains("GzipSize/GzipMD5"), "{wrong}");
        let wrong = verify(&path, gzip, (plain.0 + 1, plain.1)).unwrap_err();
        assert!(wrong.to_string().contains("FileSize/FileMD5"), "{wrong}");
    }
}
