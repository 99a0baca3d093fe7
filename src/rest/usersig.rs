//! UserSig, as Tencent's TLSSigAPIv2 makes it (the `tls-sig-api-v2` packages, the same
//! in all five languages; ../shared/tencent-rest.md §4): HMAC-SHA256 over the
//! identifier, SDKAppID, time and validity, keyed by the app's secret key; that and
//! the fields as a JSON document, zlib-compressed, base64 with `+/=` made `*-_`.

use std::io::Write;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A UserSig for `identifier` of app `sdk_app_id`, made at `time` (unix seconds) and
/// valid for `expire` seconds.
pub fn user_sig(sdk_app_id: u64, identifier: &str, key: &str, time: u64, expire: u64) -> String {
    let document = serde_json::json!({
        "TLS.ver": "2.0",
        "TLS.identifier": identifier,
        "TLS.sdkappid": sdk_app_id,
        "TLS.expire": expire,
        "TLS.time": time,
        "TLS.sig": signature(sdk_app_id, identifier, key, time, expire),
    });
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(document.to_string().as_bytes())
        .and_then(|()| zlib.flush())
        .expect("writing to memory does not fail");
    let compressed = zlib.finish().expect("writing to memory does not fail");
    STANDARD
        .encode(compressed)
        .chars()
        .map(|c| match c {
            '+' => '*',
            '/' => '-',
            '=' => '_',
            c => c,
        })
        .collect()
}

/// `TLS.sig`: standard base64 of the HMAC-SHA256, keyed by the key's own bytes (not
/// hex-decoded).
pub fn signature(sdk_app_id: u64, identifier: &str, key: &str, time: u64, expire: u64) -> String {
    let content = format!(
        "TLS.identifier:{identifier}\nTLS.sdkappid:{sdk_app_id}\nTLS.time:{time}\nTLS.expire:{expire}\n"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(content.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The JSON document inside a UserSig (what Tencent's server reads back).
pub fn decode(user_sig: &str) -> Option<serde_json::Value> {
    let standard: String = user_sig
        .chars()
        .map(|c| match c {
            '*' => '+',
            '-' => '/',
            '_' => '=',
            c => c,
        })
        .collect();
    let compressed = STANDARD.decode(standard).ok()?;
    let mut json = Vec::new();
    std::io::copy(
        &mut flate2::read::ZlibDecoder::new(&compressed[..]),
        &mut json,
    )
    .ok()?;
    serde_json::from_slice(&json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The official README's sample key and app.
    const KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";

    #[test]
    fn the_signature_of_the_official_samples_is_the_one_their_code_gives() {
        // From running the official Python and Node packages with the clock at
        // 1700000000 (../shared/tencent-rest.md §4, test vectors).
        assert_eq!(
            signature(1400000000, "xiaojun", KEY, 1700000000, 15552000),
            "LvA7d/Iw7gSsnskvVzBDPOCCDbuNCw4GHwTC0bip+B4="
        );
        assert_eq!(
            signature(1400000000, "administrator", KEY, 1700000000, 86400),
            "yLAe+w7WUeUuqbV9h/TX78u21oTGi+i9Zp1u3PpnY60="
        );
    }

    #[test]
    fn the_official_python_user_sig_decodes_to_the_document_ours_makes() {
        let python = "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkKjIT87NK82CSxSnZiQUFmSlAKUMTAyiAyqVWFGQWpYJkTE1NjRDiJZm5YFFzNPXFmekgG3zKHM1T9D3LzdODi-OKs8vCqpxcAvydnV2SSv2cy03cPcpDnA2SMgu0nUxslWoBHdYzUg__";
        let ours = user_sig(1400000000, "xiaojun", KEY, 1700000000, 15552000);
        assert_eq!(decode(python), decode(&ours));
        assert!(decode(&ours).is_some());
    }
}
