//! Request authentication: V1 (HMAC-SHA1 over all parameters) and V3 (ACS3-HMAC-SHA256 over the
//! canonical request), using the pure signer in [`crate::sign`].
//!
//! Guarantees: the signature is checked before the nonce is recorded, so a forged request cannot burn a
//! legitimate nonce; nonces are remembered on disk ([`super::nonces`]) for as long as their request's
//! timestamp is accepted, restarts included. A V3 request must sign `host` and every `x-acs-*` header
//! it carries (the V3 rule: every common header present is signed), so no unsigned header can change
//! its action, date or nonce. Secrets never appear in errors; the server string-to-sign does (as ECS
//! does).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use axum::http::StatusCode;

use super::error::SimError;
use super::nonces::{NonceCache, Recorded};
use super::params::Params;
use crate::sign;

/// Maximum clock skew between the request's timestamp and the simulator's clock.
pub const MAX_SKEW_MS: u64 = 15 * 60 * 1000;

/// Configured access keys and STS tokens.
#[derive(Clone, Default)]
pub struct Credentials {
    pub keys: HashMap<String, String>,
    pub sts_tokens: HashSet<String>,
    /// RAM roles the metadata service hands keys out for (`--ecs-ram-role`).
    pub instance_roles: Vec<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_ids", &self.keys.keys().collect::<Vec<_>>())
            .field("secrets", &"** redacted **")
            .field("sts_tokens", &self.sts_tokens.len())
            .finish()
    }
}

/// The parts of an HTTP request that authentication looks at.
#[derive(Debug)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// Query string and form body merged (V1 signs all of them).
    pub params: &'a Params,
    /// Query string parameters only (V3 signs these).
    pub query: &'a [(String, String)],
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// What a verified request told us.
#[derive(Debug, Clone)]
pub struct Verified {
    pub access_key_id: String,
    pub nonce: String,
    pub action: String,
    /// The request's own timestamp (ms): its nonce must be remembered until this plus the skew.
    pub timestamp_ms: u64,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Verifies the request's signature, timestamp, key and token, then records its nonce.
pub fn verify(
    creds: &Credentials,
    nonces: &mut NonceCache,
    req: &SignedRequest<'_>,
    now_ms: u64,
) -> Result<Verified, SimError> {
    let verified = match header(req.headers, "authorization") {
        Some(a) if a.trim_start().starts_with(sign::V3_ALGORITHM) => {
            verify_v3(creds, req, a, now_ms)?
        }
        _ => verify_v1(creds, req, now_ms)?,
    };
    let expiry = verified.timestamp_ms.saturating_add(MAX_SKEW_MS);
    let recorded = nonces
        .insert(&verified.nonce, expiry, now_ms)
        .map_err(SimError::NonceLog)?;
    if recorded == Recorded::Used {
        return Err(SimError::auth(
            StatusCode::BAD_REQUEST,
            "SignatureNonceUsed",
            format!(
                "Specified signature nonce {} was used already.",
                verified.nonce
            ),
        ));
    }
    Ok(verified)
}

/// Checks the key id and, if present, the STS token; returns the secret. Temporary `STS.` keys
/// are checked by [`super::sts`].
fn secret_for<'c>(
    creds: &'c Credentials,
    access_key_id: &str,
    token: Option<&str>,
    now_ms: u64,
) -> Result<Cow<'c, str>, SimError> {
    if let Some(temporary) = super::sts::temporary_secret(creds, access_key_id, token, now_ms) {
        return temporary;
    }
    let secret = creds.keys.get(access_key_id).ok_or_else(|| {
        SimError::auth(
            StatusCode::NOT_FOUND,
            "InvalidAccessKeyId.NotFound",
            format!("Specified access key {access_key_id} is not found."),
        )
    })?;
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        if !creds.sts_tokens.contains(token) {
            return Err(SimError::auth(
                StatusCode::BAD_REQUEST,
                "InvalidSecurityToken.Expired",
                "Specified SecurityToken is expired or not valid.",
            ));
        }
    }
    Ok(Cow::Borrowed(secret))
}

/// Parses `yyyy-MM-ddTHH:mm:ssZ`, checks the skew and returns the time in ms.
fn check_timestamp(name: &str, value: Option<&str>, now_ms: u64) -> Result<u64, SimError> {
    let value = value.filter(|v| !v.is_empty()).ok_or_else(|| {
        SimError::auth(
            StatusCode::BAD_REQUEST,
            "IllegalTimestamp",
            format!("The input parameter \"{name}\" that is mandatory for processing this request is not supplied."),
        )
    })?;
    let parsed = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            SimError::auth(
                StatusCode::BAD_REQUEST,
                "InvalidTimeStamp.Format",
                format!("Specified time stamp {value:?} does not match yyyy-MM-ddTHH:mm:ssZ."),
            )
        })?;
    let ts_ms = (parsed.unix_timestamp().max(0) as u64) * 1000;
    if ts_ms.abs_diff(now_ms) > MAX_SKEW_MS {
        return Err(SimError::auth(
            StatusCode::BAD_REQUEST,
            "InvalidTimeStamp.Expired",
            format!(
                "Specified time stamp {value} is more than 15 minutes away from the server time."
            ),
        ));
    }
    Ok(ts_ms)
}

fn mismatch(server_string_to_sign: &str) -> SimError {
    SimError::auth(
        StatusCode::BAD_REQUEST,
        "SignatureDoesNotMatch",
        format!("Specified signature is not matched with our calculation. server string to sign is:{server_string_to_sign}"),
    )
}

/// The V1 string to sign the server computes for these parameters and method.
pub fn v1_server_string_to_sign(method: &str, params: &Params) -> String {
    let pairs: Vec<(String, String)> = params
        .pairs()
        .into_iter()
        .filter(|(k, _)| k != "Signature")
        .collect();
    sign::v1_string_to_sign(method, &sign::canonical_query(&pairs))
}

fn verify_v1(
    creds: &Credentials,
    req: &SignedRequest<'_>,
    now_ms: u64,
) -> Result<Verified, SimError> {
    let p = req.params;
    let access_key_id = p.req("AccessKeyId")?;
    let signature = p.req("Signature")?;
    let nonce = p.req("SignatureNonce")?.to_string();
    if let Some(m) = p.opt("SignatureMethod") {
        if m != "HMAC-SHA1" {
            return Err(SimError::invalid(
                "SignatureMethod",
                "only HMAC-SHA1 is supported",
            ));
        }
    }
    let secret = secret_for(creds, access_key_id, p.opt("SecurityToken"), now_ms)?;
    let sts = v1_server_string_to_sign(req.method, p);
    if sign::v1_signature(&secret, &sts) != signature {
        return Err(mismatch(&sts));
    }
    let timestamp_ms = check_timestamp("Timestamp", p.opt("Timestamp"), now_ms)?;
    Ok(Verified {
        access_key_id: access_key_id.to_string(),
        nonce,
        action: p.req("Action")?.to_string(),
        timestamp_ms,
    })
}

/// The V3 string to sign the server computes, from the request's own `SignedHeaders` list.
pub fn v3_server_string_to_sign(req: &SignedRequest<'_>, signed_headers: &[String]) -> String {
    let payload_hash = sign::sha256_hex(req.body);
    let canonical = sign::v3_canonical_request(&sign::V3Request {
        method: req.method,
        path: "/",
        query: req.query,
        headers: req.headers,
        signed_headers,
        payload_hash: &payload_hash,
    });
    sign::v3_string_to_sign(&canonical)
}

fn verify_v3(
    creds: &Credentials,
    req: &SignedRequest<'_>,
    authorization: &str,
    now_ms: u64,
) -> Result<Verified, SimError> {
    let auth = sign::parse_v3_authorization(authorization).ok_or_else(|| {
        SimError::auth(
            StatusCode::BAD_REQUEST,
            "IncompleteSignature",
            "The Authorization header is not a valid ACS3-HMAC-SHA256 header.",
        )
    })?;
    check_signed_headers(req.headers, &auth.signed_headers)?;
    let token = header(req.headers, "x-acs-security-token");
    let secret = secret_for(creds, &auth.access_key_id, token, now_ms)?;
    let sts = v3_server_string_to_sign(req, &auth.signed_headers);
    if sign::v3_signature(&secret, &sts) != auth.signature.to_ascii_lowercase() {
        return Err(mismatch(&sts));
    }
    let timestamp_ms = check_timestamp("x-acs-date", header(req.headers, "x-acs-date"), now_ms)?;
    let nonce = header(req.headers, "x-acs-signature-nonce")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| SimError::MissingParameter("x-acs-signature-nonce".into()))?;
    let action = header(req.headers, "x-acs-action")
        .or_else(|| req.params.opt("Action"))
        .ok_or_else(|| SimError::MissingParameter("x-acs-action".into()))?;
    Ok(Verified {
        access_key_id: auth.access_key_id,
        nonce: nonce.to_string(),
        action: action.to_string(),
        timestamp_ms,
    })
}

/// The V3 rule: `host` and every `x-acs-*` header the request carries are in `SignedHeaders`.
/// Without it, a captured request signed over `host` alone could be sent again with a fresh date and
/// nonce and another action. Answered like ECS answers a malformed signature: `IncompleteSignature`.
fn check_signed_headers(headers: &[(String, String)], signed: &[String]) -> Result<(), SimError> {
    let is_signed = |name: &str| signed.iter().any(|s| s.eq_ignore_ascii_case(name));
    let unsigned = std::iter::once("host")
        .chain(
            headers
                .iter()
                .map(|(n, _)| n.as_str())
                .filter(|n| n.to_ascii_lowercase().starts_with("x-acs-")),
        )
        .find(|n| !is_signed(n));
    match unsigned {
        None => Ok(()),
        Some(name) => Err(SimError::auth(
            StatusCode::BAD_REQUEST,
            "IncompleteSignature",
            format!(
                "The request signature does not conform to Aliyun standards: header {} is not in SignedHeaders (sign host and every x-acs-* header).",
                name.to_ascii_lowercase()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    //! The verifier against the exact inputs of the vectors in `docs/ecs-api.md` §1. Vectors whose
    //! timestamps are not real times (V1-b, V1-c) must pass the signature check and then fail only on
    //! the timestamp, which proves the signature matched (it is checked first).
    use super::*;

    fn creds(id: &str, secret: &str, token: Option<&str>) -> Credentials {
        let mut c = Credentials::default();
        c.keys.insert(id.into(), secret.into());
        c.sts_tokens.extend(token.map(str::to_string));
        c
    }

    fn params(p: &[(&str, &str)]) -> Params {
        let mut out = Params::default();
        for (k, v) in p {
            out.insert(k, v);
        }
        out
    }

    fn ms(ts: &str) -> u64 {
        let t = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
            .unwrap();
        t.unix_timestamp() as u64 * 1000
    }

    fn v1(method: &str, p: &Params, c: &Credentials, now: u64) -> Result<Verified, SimError> {
        let req = SignedRequest {
            method,
            params: p,
            query: &[],
            headers: &[],
            body: b"",
        };
        verify(c, &mut NonceCache::default(), &req, now)
    }

    const V1A: &[(&str, &str)] = &[
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
    fn v1_a_verifies_and_a_changed_byte_does_not() {
        let c = creds("testid", "testsecret", None);
        let mut p = params(V1A);
        p.insert("Signature", "OLeaidS1JvxuMvnyHOwuJ+uX5qY=");
        let now = ms("2016-02-23T12:50:00Z");
        assert_eq!(v1("GET", &p, &c, now).unwrap().action, "DescribeRegions");
        p.insert("Signature", "OLeaidS1JvxuMvnyHOwuJ+uX5qZ=");
        let e = v1("GET", &p, &c, now).unwrap_err();
        assert_eq!(e.code(), "SignatureDoesNotMatch");
        assert!(e.to_string().ends_with("server string to sign is:GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"));
        let late = ms("2016-02-23T13:02:00Z");
        let mut p = params(V1A);
        p.insert("Signature", "OLeaidS1JvxuMvnyHOwuJ+uX5qY=");
        assert_eq!(
            v1("GET", &p, &c, late).unwrap_err().code(),
            "InvalidTimeStamp.Expired"
        );
    }

    #[test]
    fn v1_b_capital_s_timestamp_signature_matches_then_timestamp_is_missing() {
        let c = creds("testid", "testsecret", None);
        let mut p = params(
            &V1A.iter()
                .map(|&(k, v)| (if k == "Timestamp" { "TimeStamp" } else { k }, v))
                .collect::<Vec<_>>(),
        );
        p.insert("Signature", "CT9X0VtwR86fNWSnsc6v8YGOjuE=");
        assert_eq!(v1("GET", &p, &c, 0).unwrap_err().code(), "IllegalTimestamp");
    }

    #[test]
    fn v1_c_go_sdk_vector_with_and_without_sts_token() {
        let base = [
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
        let c = creds("accessKeyId", "accessKeySecret", Some("accessKeyStsToken"));
        let mut p = params(&base);
        p.insert("Signature", "7loPmFjvDnzOVnQeQNj85S6nFGY=");
        assert_eq!(
            v1("GET", &p, &c, 0).unwrap_err().code(),
            "InvalidTimeStamp.Format"
        );
        p.insert("SecurityToken", "accessKeyStsToken");
        p.insert("Signature", "5Nxdcler+ihqWqv0Hr2On4PsBf4=");
        assert_eq!(
            v1("GET", &p, &c, 0).unwrap_err().code(),
            "InvalidTimeStamp.Format"
        );
        let no_token = creds("accessKeyId", "accessKeySecret", None);
        assert_eq!(
            v1("GET", &p, &no_token, 0).unwrap_err().code(),
            "InvalidSecurityToken.Expired"
        );
    }

    #[test]
    fn v1_g_pop_core_form_body_verifies_and_nonce_replay_is_refused() {
        let c = creds("testid", "testsecret", None);
        let mut p = Params::default();
        p.add_urlencoded(b"AccessKeyId=testid&Action=DescribeInstances&Format=JSON&InstanceIds=%5B%22i-abc%22%5D&RegionId=cn-hangzhou&SignatureMethod=HMAC-SHA1&SignatureNonce=e54a2e2f439bbf27081a912d6bfcbf71&SignatureVersion=1.0&Timestamp=2026-11-25T01%3A36%3A13Z&Version=2014-05-26&Signature=Cr8a6QPsDxiNW3uFJq9zEdk8Ltk%3D");
        let req = SignedRequest {
            method: "POST",
            params: &p,
            query: &[],
            headers: &[],
            body: b"",
        };
        let mut nonces = NonceCache::default();
        let now = ms("2026-11-25T01:36:20Z");
        assert_eq!(
            verify(&c, &mut nonces, &req, now).unwrap().action,
            "DescribeInstances"
        );
        assert_eq!(
            verify(&c, &mut nonces, &req, now).unwrap_err().code(),
            "SignatureNonceUsed"
        );
    }

    fn v3(
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        auth: &str,
        c: &Credentials,
        now: u64,
    ) -> Result<Verified, SimError> {
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        headers.push(("authorization".into(), auth.into()));
        let mut p = Params::default();
        for (k, v) in &query {
            p.insert(k, v);
        }
        let req = SignedRequest {
            method: "POST",
            params: &p,
            query: &query,
            headers: &headers,
            body: b"",
        };
        verify(c, &mut NonceCache::default(), &req, now)
    }

    #[test]
    fn v3_a_official_vector_verifies_and_a_changed_query_does_not() {
        let c = creds("YourAccessKeyId", "YourAccessKeySecret", None);
        let headers = [
            ("host", "ecs.cn-shanghai.aliyuncs.com"),
            ("x-acs-action", "RunInstances"),
            ("x-acs-content-sha256", sign::EMPTY_BODY_SHA256),
            ("x-acs-date", "2023-10-26T10:22:32Z"),
            ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
            ("x-acs-version", "2014-05-26"),
            ("user-agent", "not signed, so ignored"),
        ];
        let auth = "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0";
        let query = [
            (
                "ImageId",
                "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
            ),
            ("RegionId", "cn-shanghai"),
        ];
        let now = ms("2023-10-26T10:25:00Z");
        assert_eq!(
            v3(&query, &headers, auth, &c, now).unwrap().action,
            "RunInstances"
        );
        let changed = [query[0], ("RegionId", "cn-shanghaI")];
        let e = v3(&changed, &headers, auth, &c, now).unwrap_err();
        assert_eq!(e.code(), "SignatureDoesNotMatch");
        assert!(e
            .to_string()
            .contains("server string to sign is:ACS3-HMAC-SHA256\n"));
    }

    #[test]
    fn v3_refuses_an_unsigned_x_acs_header_and_a_missing_host_before_the_signature() {
        let c = creds("YourAccessKeyId", "YourAccessKeySecret", None);
        let headers = [
            ("host", "ecs.cn-shanghai.aliyuncs.com"),
            ("x-acs-action", "RunInstances"),
            ("x-acs-date", "2023-10-26T10:22:32Z"),
            ("X-Acs-Signature-Nonce", "3156853299f313e23d1673dc12e1703d"),
        ];
        let now = ms("2023-10-26T10:25:00Z");
        let only_host =
            "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host,Signature=00";
        let e = v3(&[], &headers, only_host, &c, now).unwrap_err();
        assert_eq!(e.code(), "IncompleteSignature");
        assert!(
            e.to_string()
                .contains("header x-acs-action is not in SignedHeaders"),
            "{e}"
        );
        let no_host = "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=x-acs-action;x-acs-date;x-acs-signature-nonce,Signature=00";
        let e = v3(&[], &headers, no_host, &c, now).unwrap_err();
        assert!(e.to_string().contains("header host is not"), "{e}");
        let all = "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;x-acs-date;x-acs-signature-nonce,Signature=00";
        let e = v3(&[], &headers, all, &c, now).unwrap_err();
        assert_eq!(e.code(), "SignatureDoesNotMatch", "the header rule is met");
    }

    #[test]
    fn v3_c_node_tea_sdk_vector_verifies_with_host_and_port() {
        let c = creds("testid", "testsecret", None);
        let headers = [
            ("host", "127.0.0.1:18765"),
            ("x-acs-action", "StopInstance"),
            ("x-acs-content-sha256", sign::EMPTY_BODY_SHA256),
            ("x-acs-credentials-provider", "static_ak"),
            ("x-acs-date", "2026-11-25T01:36:13Z"),
            (
                "x-acs-signature-nonce",
                "f8b7670e3910041df0aacf9df8243dde63eaa821fd34b87152ee0d7efd67657c",
            ),
            ("x-acs-version", "2014-05-26"),
        ];
        let auth = "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=ff3cc1da0e13b37c8d99256716738ec347998b5cf1957175d0fd14742aae10c7";
        let query = [("ForceStop", "true"), ("InstanceId", "i-abc")];
        let now = ms("2026-11-25T01:36:13Z");
        assert_eq!(
            v3(&query, &headers, auth, &c, now).unwrap().action,
            "StopInstance"
        );
        let wrong = creds("testid", "testsecreT", None);
        assert_eq!(
            v3(&query, &headers, auth, &wrong, now).unwrap_err().code(),
            "SignatureDoesNotMatch"
        );
    }
}
