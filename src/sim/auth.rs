//! Request authentication: V1 (HMAC-SHA1 over all parameters) and V3 (ACS3-HMAC-SHA256 over the
//! canonical request), using the pure signer in [`crate::sign`].
//!
//! Guarantees: the signature is checked before the nonce is recorded, so a forged request cannot burn a
//! legitimate nonce. Secrets never appear in errors; the server string-to-sign does (as ECS does).
//! Caveats: the nonce cache is in memory; it forgets nonces after 30 minutes and on restart.

use std::collections::{HashMap, HashSet, VecDeque};

use axum::http::StatusCode;

use super::error::SimError;
use super::params::Params;
use crate::sign;

/// Maximum clock skew between the request's timestamp and the simulator's clock.
pub const MAX_SKEW_MS: u64 = 15 * 60 * 1000;
const NONCE_MEMORY_MS: u64 = 2 * MAX_SKEW_MS;

/// Configured access keys and STS tokens.
#[derive(Clone, Default)]
pub struct Credentials {
    pub keys: HashMap<String, String>,
    pub sts_tokens: HashSet<String>,
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
}

/// Remembers recently used nonces.
#[derive(Debug, Default)]
pub struct NonceCache {
    seen: HashSet<String>,
    order: VecDeque<(u64, String)>,
}

impl NonceCache {
    /// Records `nonce`; false if it was already used.
    pub fn insert(&mut self, nonce: &str, now_ms: u64) -> bool {
        while let Some((t, _)) = self.order.front() {
            if now_ms.saturating_sub(*t) <= NONCE_MEMORY_MS {
                break;
            }
            let (_, n) = self.order.pop_front().expect("front exists");
            self.seen.remove(&n);
        }
        if !self.seen.insert(nonce.to_string()) {
            return false;
        }
        self.order.push_back((now_ms, nonce.to_string()));
        true
    }
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
    if !nonces.insert(&verified.nonce, now_ms) {
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

/// Checks the key id and, if present, the STS token; returns the secret.
fn secret_for<'c>(
    creds: &'c Credentials,
    access_key_id: &str,
    token: Option<&str>,
) -> Result<&'c str, SimError> {
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
    Ok(secret)
}

/// Parses `yyyy-MM-ddTHH:mm:ssZ` and checks the skew.
fn check_timestamp(name: &str, value: Option<&str>, now_ms: u64) -> Result<(), SimError> {
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
    Ok(())
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
    let secret = secret_for(creds, access_key_id, p.opt("SecurityToken"))?;
    let sts = v1_server_string_to_sign(req.method, p);
    if sign::v1_signature(secret, &sts) != signature {
        return Err(mismatch(&sts));
    }
    check_timestamp("Timestamp", p.opt("Timestamp"), now_ms)?;
    Ok(Verified {
        access_key_id: access_key_id.to_string(),
        nonce,
        action: p.req("Action")?.to_string(),
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
    let token = header(req.headers, "x-acs-security-token");
    let secret = secret_for(creds, &auth.access_key_id, token)?;
    let sts = v3_server_string_to_sign(req, &auth.signed_headers);
    if sign::v3_signature(secret, &sts) != auth.signature.to_ascii_lowercase() {
        return Err(mismatch(&sts));
    }
    check_timestamp("x-acs-date", header(req.headers, "x-acs-date"), now_ms)?;
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
    })
}
