//! The pure request signer for the ECS RPC API, shared by the client (which signs) and the simulator
//! (which verifies). Both styles from `docs/ecs-api.md` §1:
//!
//! - **V1** (`SignatureVersion=1.0`, HMAC-SHA1): every parameter, sorted and percent-encoded, is signed.
//! - **V3** (`ACS3-HMAC-SHA256`): a canonical request over method, path, query, chosen headers and the
//!   body hash.
//!
//! Guarantees: no clock, no RNG, no I/O. Time, nonce and secret are inputs, so every stage can be tested
//! against golden vectors (canonical query / canonical request → string to sign → signature) and a
//! failure shows which stage diverged.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Name of the V3 algorithm, first token of the `Authorization` header and of the string to sign.
pub const V3_ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// SHA-256 of the empty body, sent as `x-acs-content-sha256` by every SDK for RPC calls.
pub const EMPTY_BODY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Percent-encodes `s` as Alibaba Cloud requires: UTF-8 bytes, `A-Z a-z 0-9 - _ . ~` kept,
/// everything else `%XY` in uppercase hex (so space is `%20`, `*` is `%2A`).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push_str(&format!("{b:02X}"));
        }
    }
    out
}

/// Sorts parameters by name (byte order, stable for equal names) and joins `name=value` pairs, both
/// percent-encoded, with `&`. This is V1's CanonicalizedQueryString and V3's CanonicalQueryString.
pub fn canonical_query<K: AsRef<str>, V: AsRef<str>>(params: &[(K, V)]) -> String {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (percent_encode(k.as_ref()), percent_encode(v.as_ref())))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// V1 string to sign: `METHOD&%2F&percent_encode(canonical_query)`.
pub fn v1_string_to_sign(method: &str, canonical_query: &str) -> String {
    format!("{method}&%2F&{}", percent_encode(canonical_query))
}

/// Base64 HMAC-SHA1 of `data` under the raw `key` (the V1 primitive, no `&` appended).
pub fn hmac_sha1_base64(key: &[u8], data: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// V1 signature: Base64(HMAC-SHA1(secret + "&", string_to_sign)).
pub fn v1_signature(secret: &str, string_to_sign: &str) -> String {
    hmac_sha1_base64(format!("{secret}&").as_bytes(), string_to_sign)
}

/// Signs a V1 request in one go and returns `(string_to_sign, signature)`. `params` must not contain
/// `Signature`; it must contain every other parameter that will be sent (query and form body).
pub fn v1_sign<K: AsRef<str>, V: AsRef<str>>(
    method: &str,
    params: &[(K, V)],
    secret: &str,
) -> (String, String) {
    let sts = v1_string_to_sign(method, &canonical_query(params));
    let sig = v1_signature(secret, &sts);
    (sts, sig)
}

/// Lowercase hex SHA-256, used for body hashes and the canonical request hash.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The parts of an HTTP request that V3 signs.
#[derive(Debug, Clone)]
pub struct V3Request<'a> {
    /// HTTP method, uppercase (`POST`, `GET`).
    pub method: &'a str,
    /// Request path; empty means `/`.
    pub path: &'a str,
    /// Decoded query parameters.
    pub query: &'a [(String, String)],
    /// Every header available to the signer (name in any case, value as sent).
    pub headers: &'a [(String, String)],
    /// Names of the headers to sign (any case); the verifier takes them from `SignedHeaders`.
    pub signed_headers: &'a [String],
    /// Hex SHA-256 of the body (`x-acs-content-sha256`).
    pub payload_hash: &'a str,
}

/// Lowercase, sorted, deduplicated signed header names.
fn normalized_signed_headers(names: &[String]) -> Vec<String> {
    let mut names: Vec<String> = names
        .iter()
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The `SignedHeaders` value: lowercase names, sorted, joined by `;`.
pub fn v3_signed_headers(names: &[String]) -> String {
    normalized_signed_headers(names).join(";")
}

/// V3 canonical headers: `name:value\n` per signed header, values of repeated headers trimmed,
/// sorted and joined by `,`.
pub fn v3_canonical_headers(headers: &[(String, String)], signed: &[String]) -> String {
    let mut out = String::new();
    for name in normalized_signed_headers(signed) {
        let mut values: Vec<&str> = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(&name))
            .map(|(_, v)| v.trim())
            .collect();
        values.sort();
        out.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    out
}

/// V3 canonical request (see module docs).
pub fn v3_canonical_request(req: &V3Request<'_>) -> String {
    let path = if req.path.is_empty() { "/" } else { req.path };
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        path,
        canonical_query(req.query),
        v3_canonical_headers(req.headers, req.signed_headers),
        v3_signed_headers(req.signed_headers),
        req.payload_hash
    )
}

/// V3 string to sign: `ACS3-HMAC-SHA256\n` + hex SHA-256 of the canonical request.
pub fn v3_string_to_sign(canonical_request: &str) -> String {
    format!(
        "{V3_ALGORITHM}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// V3 signature: lowercase hex HMAC-SHA256 under the raw secret.
pub fn v3_signature(secret: &str, string_to_sign: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The `Authorization` header value for V3.
pub fn v3_authorization(access_key_id: &str, signed_headers: &[String], signature: &str) -> String {
    format!(
        "{V3_ALGORITHM} Credential={access_key_id},SignedHeaders={},Signature={signature}",
        v3_signed_headers(signed_headers)
    )
}

/// The three fields of a V3 `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V3Authorization {
    pub access_key_id: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parses `ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..`; `None` if malformed.
pub fn parse_v3_authorization(value: &str) -> Option<V3Authorization> {
    let rest = value.trim().strip_prefix(V3_ALGORITHM)?.trim_start();
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => cred = Some(v.to_string()),
            "SignedHeaders" => signed = Some(v.split(';').map(str::to_string).collect()),
            "Signature" => sig = Some(v.to_string()),
            _ => {}
        }
    }
    Some(V3Authorization {
        access_key_id: cred?,
        signed_headers: signed?,
        signature: sig?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const V1A_PARAMS: &[(&str, &str)] = &[
        ("AccessKeyId", "testid"),
        ("Action", "DescribeRegions"),
        ("Format", "XML"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
        ("SignatureVersion", "1.0"),
        ("Timestamp", "2016-02-23T12:46:24Z"),
        ("Version", "2014-05-26"),
    ];

    #[test]
    fn percent_encoding_follows_the_alibaba_rules() {
        assert_eq!(percent_encode("a b*c~d/e=f&g"), "a%20b%2Ac~d%2Fe%3Df%26g");
        assert_eq!(percent_encode("中"), "%E4%B8%AD");
        assert_eq!(percent_encode("-_.~"), "-_.~");
    }

    #[test]
    fn v1_a_official_doc_vector_stage_by_stage() {
        let cq = canonical_query(V1A_PARAMS);
        assert_eq!(
            cq,
            "AccessKeyId=testid&Action=DescribeRegions&Format=XML&SignatureMethod=HMAC-SHA1\
             &SignatureNonce=3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf&SignatureVersion=1.0\
             &Timestamp=2016-02-23T12%3A46%3A24Z&Version=2014-05-26"
        );
        let sts = v1_string_to_sign("GET", &cq);
        assert_eq!(
            sts,
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML\
             %26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf\
             %26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
        let sig = v1_signature("testsecret", &sts);
        assert_eq!(sig, "OLeaidS1JvxuMvnyHOwuJ+uX5qY=");
        assert_eq!(percent_encode(&sig), "OLeaidS1JvxuMvnyHOwuJ%2BuX5qY%3D");
    }

    #[test]
    fn v1_b_timestamp_spelled_with_capital_s_changes_the_signature() {
        let params: Vec<(&str, &str)> = V1A_PARAMS
            .iter()
            .map(|&(k, v)| (if k == "Timestamp" { "TimeStamp" } else { k }, v))
            .collect();
        let (_, sig) = v1_sign("GET", &params, "testsecret");
        assert_eq!(sig, "CT9X0VtwR86fNWSnsc6v8YGOjuE=");
    }

    #[test]
    fn v1_c_go_sdk_vector_with_empty_values_and_spaces() {
        let mut params = vec![
            ("AccessKeyId", "accessKeyId"),
            ("Action", ""),
            ("Format", "JSON"),
            ("RegionId", "regionId"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "MOCK_UUID"),
            ("SignatureType", ""),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "mock date"),
            ("Version", ""),
        ];
        let (sts, sig) = v1_sign("GET", &params, "accessKeySecret");
        assert!(sts.contains("Timestamp%3Dmock%2520date"), "{sts}");
        assert_eq!(sig, "7loPmFjvDnzOVnQeQNj85S6nFGY=");
        params.push(("SecurityToken", "accessKeyStsToken"));
        let (_, sig) = v1_sign("GET", &params, "accessKeySecret");
        assert_eq!(sig, "5Nxdcler+ihqWqv0Hr2On4PsBf4=");
    }

    #[test]
    fn v1_d_values_are_encoded_twice_in_the_string_to_sign() {
        let params = [("key", "value"), ("q", "http://domain/?q=value&q2=value2")];
        assert_eq!(
            v1_string_to_sign("GET", &canonical_query(&params)),
            "GET&%2F&key%3Dvalue%26q%3Dhttp%253A%252F%252Fdomain%252F%253Fq%253Dvalue%2526q2%253Dvalue2"
        );
    }

    #[test]
    fn v1_e_tea_util_vector_with_empty_method() {
        let (sts, sig) = v1_sign("", &[("test", "ok")], "accessKeySecret");
        assert_eq!(sts, "&%2F&test%3Dok");
        assert_eq!(sig, "jHx/oHoHNrbVfhncHEvPdHXZwHU=");
    }

    #[test]
    fn v1_f_hmac_primitive_with_raw_key() {
        assert_eq!(
            hmac_sha1_base64(b"secret", "source"),
            "Jv4yi8SobFhg5t1C7nWLbhBSFZQ="
        );
        assert_eq!(
            hmac_sha1_base64(b"secret", "中文unicode"),
            "szlfHs3WVaO/HgY3Cg7/uyXDaRw="
        );
    }

    #[test]
    fn v1_g_pop_core_post_form_body() {
        let params = [
            ("AccessKeyId", "testid"),
            ("Action", "DescribeInstances"),
            ("Format", "JSON"),
            ("InstanceIds", "[\"i-abc\"]"),
            ("RegionId", "cn-hangzhou"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "e54a2e2f439bbf27081a912d6bfcbf71"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2026-11-25T01:36:13Z"),
            ("Version", "2014-05-26"),
        ];
        let (sts, sig) = v1_sign("POST", &params, "testsecret");
        assert!(sts.starts_with(
            "POST&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeInstances%26Format%3DJSON\
             %26InstanceIds%3D%255B%2522i-abc%2522%255D"
        ));
        assert_eq!(sig, "Cr8a6QPsDxiNW3uFJq9zEdk8Ltk=");
    }

    fn v3a_headers() -> Vec<(String, String)> {
        owned(&[
            ("host", "ecs.cn-shanghai.aliyuncs.com"),
            ("x-acs-action", "RunInstances"),
            ("x-acs-content-sha256", EMPTY_BODY_SHA256),
            ("x-acs-date", "2023-10-26T10:22:32Z"),
            ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
            ("x-acs-version", "2014-05-26"),
        ])
    }

    #[test]
    fn v3_a_official_doc_vector_stage_by_stage() {
        let query = owned(&[
            (
                "ImageId",
                "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
            ),
            ("RegionId", "cn-shanghai"),
        ]);
        let headers = v3a_headers();
        let signed: Vec<String> = headers.iter().map(|(k, _)| k.clone()).collect();
        let req = V3Request {
            method: "POST",
            path: "/",
            query: &query,
            headers: &headers,
            signed_headers: &signed,
            payload_hash: EMPTY_BODY_SHA256,
        };
        let cr = v3_canonical_request(&req);
        assert!(cr.starts_with("POST\n/\nImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\nhost:ecs.cn-shanghai.aliyuncs.com\n"));
        assert_eq!(
            sha256_hex(cr.as_bytes()),
            "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
        let sts = v3_string_to_sign(&cr);
        let sig = v3_signature("YourAccessKeySecret", &sts);
        assert_eq!(
            sig,
            "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
        let auth = v3_authorization("YourAccessKeyId", &signed, &sig);
        assert_eq!(
            auth,
            "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;\
             x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,\
             Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
        let parsed = parse_v3_authorization(&auth).unwrap();
        assert_eq!(parsed.access_key_id, "YourAccessKeyId");
        assert_eq!(parsed.signed_headers.len(), 6);
        assert_eq!(parsed.signature, sig);
    }

    #[test]
    fn v3_b_tea_util_vector_joins_repeated_headers() {
        let query = owned(&[("test", "ok"), ("empty", "")]);
        let headers = owned(&[("x-acs-test", "http"), ("x-acs-TEST", "https")]);
        let signed = vec!["x-acs-test".to_string()];
        let req = V3Request {
            method: "",
            path: "",
            query: &query,
            headers: &headers,
            signed_headers: &signed,
            payload_hash: "55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23",
        };
        let cr = v3_canonical_request(&req);
        assert!(
            cr.contains("\nempty=&test=ok\nx-acs-test:http,https\n"),
            "{cr}"
        );
        let sig = v3_signature("secret", &v3_string_to_sign(&cr));
        assert_eq!(
            v3_authorization("acesskey", &signed, &sig),
            "ACS3-HMAC-SHA256 Credential=acesskey,SignedHeaders=x-acs-test,\
             Signature=4ab59fffe3c5738ff8a2729f90cc04fe18b02a4b15b2102cbaf92f9ff3df2ea3"
        );
    }

    #[test]
    fn v3_c_node_tea_sdk_stop_instance() {
        let query = owned(&[("ForceStop", "true"), ("InstanceId", "i-abc")]);
        let headers = owned(&[
            ("host", "127.0.0.1:18765"),
            ("x-acs-action", "StopInstance"),
            ("x-acs-content-sha256", EMPTY_BODY_SHA256),
            ("x-acs-credentials-provider", "static_ak"),
            ("x-acs-date", "2026-11-25T01:36:13Z"),
            (
                "x-acs-signature-nonce",
                "f8b7670e3910041df0aacf9df8243dde63eaa821fd34b87152ee0d7efd67657c",
            ),
            ("x-acs-version", "2014-05-26"),
        ]);
        let signed: Vec<String> = headers.iter().map(|(k, _)| k.clone()).collect();
        let req = V3Request {
            method: "POST",
            path: "/",
            query: &query,
            headers: &headers,
            signed_headers: &signed,
            payload_hash: EMPTY_BODY_SHA256,
        };
        let cr = v3_canonical_request(&req);
        assert_eq!(
            sha256_hex(cr.as_bytes()),
            "b3979d4cfa9742f3c2880f98363ebbf9ff9d9a2f7b6771078beaba7b0bf3177f"
        );
        assert_eq!(
            v3_signature("testsecret", &v3_string_to_sign(&cr)),
            "ff3cc1da0e13b37c8d99256716738ec347998b5cf1957175d0fd14742aae10c7"
        );
    }

    #[test]
    fn malformed_v3_authorization_is_rejected() {
        assert!(parse_v3_authorization("Bearer x").is_none());
        assert!(parse_v3_authorization("ACS3-HMAC-SHA256 Credential=a,Signature=b").is_none());
    }
}
