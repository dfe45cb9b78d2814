//! The simulator's STS surface: `AssumeRole` (signed like any ECS call), `AssumeRoleWithOIDC`
//! (anonymous: the OIDC token is the proof), and the temporary keys they and the instance
//! metadata service ([`super::metadata`]) hand out.
//!
//! Temporary keys are derived, not stored: the AccessKeySecret and SecurityToken are HMACs of the
//! AccessKeyId (and expiry) under a key derived from the configured access keys. So any
//! simulator started with the same `--access-key`s accepts them (also after a restart), and a
//! token paired with another key id, or past its expiry, is refused as real STS refuses it.

use std::borrow::Cow;

use axum::http::StatusCode;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::auth::{Credentials, Verified};
use super::error::SimError;
use super::params::Params;

/// The anonymous STS action.
const OIDC_ACTION: &str = "AssumeRoleWithOIDC";
/// Prefix of every temporary AccessKeyId, as real STS keys have it.
const KEY_PREFIX: &str = "STS.";
/// Allowed `DurationSeconds` (STS: 15 minutes to 12 hours).
const DURATION_RANGE: std::ops::RangeInclusive<u64> = 900..=43_200;

/// True for the actions this module answers.
pub fn handles(action: &str) -> bool {
    matches!(action, "AssumeRole" | OIDC_ACTION)
}

/// `AssumeRoleWithOIDC` carries no signature; its verification is the OIDC token check.
pub fn anonymous(params: &Params) -> Option<Verified> {
    (params.opt("Action") == Some(OIDC_ACTION)).then(|| Verified {
        access_key_id: String::new(),
        nonce: String::new(),
        action: OIDC_ACTION.to_string(),
        timestamp_ms: 0,
    })
}

/// Answers an STS action (the caller has verified the signature when one is needed).
pub fn act(
    creds: &Credentials,
    action: &str,
    params: &Params,
    now_ms: u64,
) -> Result<Value, SimError> {
    let role_arn = params.req("RoleArn")?;
    let (account, role) = parse_arn(role_arn, "role/").ok_or_else(|| {
        SimError::invalid("RoleArn", "must look like acs:ram::<account>:role/<name>")
    })?;
    let session = params.req("RoleSessionName")?;
    let duration = match params.opt("DurationSeconds") {
        None => 3600,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|d| DURATION_RANGE.contains(d))
            .ok_or_else(|| SimError::invalid("DurationSeconds", "must be 900 to 43200"))?,
    };
    if action == OIDC_ACTION {
        check_oidc(params)?;
    }
    let keys = issue(creds, duration, now_ms);
    Ok(json!({
        "AssumedRoleUser": {
            "Arn": format!("acs:ram::{account}:assumed-role/{role}/{session}"),
            "AssumedRoleId": format!("3{:016}:{session}", now_ms % 10_000_000_000_000_000),
        },
        "Credentials": keys,
    }))
}

/// `acs:ram::<account>:<kind><name>` → (account, name).
fn parse_arn<'a>(arn: &'a str, kind: &str) -> Option<(&'a str, &'a str)> {
    let rest = arn.strip_prefix("acs:ram::")?;
    let (account, resource) = rest.split_once(':')?;
    let name = resource.strip_prefix(kind)?;
    let valid =
        !account.is_empty() && account.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty();
    valid.then_some((account, name))
}

/// The OIDC provider ARN must be well formed and the token a JWT (three dot-separated parts).
fn check_oidc(params: &Params) -> Result<(), SimError> {
    let provider = params.req("OIDCProviderArn")?;
    parse_arn(provider, "oidc-provider/").ok_or_else(|| {
        SimError::invalid(
            "OIDCProviderArn",
            "must look like acs:ram::<account>:oidc-provider/<name>",
        )
    })?;
    let token = params.req("OIDCToken")?;
    if token.split('.').count() != 3 || token.split('.').any(str::is_empty) {
        return Err(SimError::bad_request(
            "AuthenticationFail.OIDCToken.Invalid",
            "The OIDCToken is not a valid JWT.",
        ));
    }
    Ok(())
}

/// New temporary keys valid for `duration_secs`, in STS's `Credentials` shape.
pub fn issue(creds: &Credentials, duration_secs: u64, now_ms: u64) -> Value {
    let id = format!("{KEY_PREFIX}{}", uuid::Uuid::new_v4().simple());
    let expiry = now_ms / 1000 + duration_secs;
    let expiration = time::OffsetDateTime::from_unix_timestamp(expiry as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    json!({
        "AccessKeyId": id,
        "AccessKeySecret": derive(creds, &format!("secret|{id}")),
        "SecurityToken": token_for(creds, &id, expiry),
        "Expiration": expiration,
    })
}

fn token_for(creds: &Credentials, id: &str, expiry: u64) -> String {
    format!(
        "sim-sts.{expiry}.{}",
        derive(creds, &format!("token|{id}|{expiry}"))
    )
}

/// HMAC-SHA256 under a key derived from every configured access key.
fn derive(creds: &Credentials, what: &str) -> String {
    let mut pairs: Vec<(&String, &String)> = creds.keys.iter().collect();
    pairs.sort();
    let mut master = Sha256::new();
    master.update(b"bakerd-sim-sts/1");
    for (id, secret) in pairs {
        master.update(format!("{id}:{secret}\n").as_bytes());
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&master.finalize()).expect("any key length");
    mac.update(what.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The secret of a temporary key, once its token is checked; `None` for other key ids.
pub fn temporary_secret(
    creds: &Credentials,
    access_key_id: &str,
    token: Option<&str>,
    now_ms: u64,
) -> Option<Result<Cow<'static, str>, SimError>> {
    if !access_key_id.starts_with(KEY_PREFIX) {
        return None;
    }
    let expired = || {
        SimError::auth(
            StatusCode::BAD_REQUEST,
            "InvalidSecurityToken.Expired",
            "Specified SecurityToken is expired or not valid.",
        )
    };
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Some(Err(SimError::auth(
            StatusCode::BAD_REQUEST,
            "MissingSecurityToken",
            "SecurityToken is mandatory for temporary access key.",
        )));
    };
    let expiry = token
        .strip_prefix("sim-sts.")
        .and_then(|rest| rest.split('.').next())
        .and_then(|e| e.parse::<u64>().ok());
    let valid =
        expiry.is_some_and(|e| e * 1000 > now_ms && token_for(creds, access_key_id, e) == token);
    if !valid {
        return Some(Err(expired()));
    }
    Some(Ok(Cow::Owned(derive(
        creds,
        &format!("secret|{access_key_id}"),
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        let mut c = Credentials::default();
        c.keys.insert("testid".into(), "testsecret".into());
        c
    }

    #[test]
    fn issued_keys_verify_until_they_expire_and_only_with_their_own_token() {
        let c = creds();
        let keys = issue(&c, 900, 1_000_000);
        let id = keys["AccessKeyId"].as_str().unwrap();
        let token = keys["SecurityToken"].as_str().unwrap();
        let secret = temporary_secret(&c, id, Some(token), 1_000_000)
            .unwrap()
            .unwrap();
        assert_eq!(secret, keys["AccessKeySecret"].as_str().unwrap());
        assert!(temporary_secret(&c, id, Some(token), 1_000_000 + 901_000)
            .unwrap()
            .is_err());
        let other = issue(&c, 900, 1_000_000);
        let other_token = other["SecurityToken"].as_str().unwrap();
        assert!(temporary_secret(&c, id, Some(other_token), 1_000_000)
            .unwrap()
            .is_err());
        assert!(temporary_secret(&c, id, None, 1_000_000).unwrap().is_err());
        assert!(temporary_secret(&c, "testid", None, 0).is_none());
    }

    #[test]
    fn role_arns_are_checked() {
        assert_eq!(
            parse_arn("acs:ram::123:role/builder", "role/"),
            Some(("123", "builder"))
        );
        assert_eq!(parse_arn("acs:ram::12x:role/builder", "role/"), None);
        assert_eq!(parse_arn("arn:aws:iam::1:role/x", "role/"), None);
    }
}
