//! Key pairs: ImportKeyPair (rsa, dsa, ecdsa and ed25519 OpenSSH public keys), CreateKeyPair
//! (generates an ed25519 key, returned in OpenSSH's private key format), DescribeKeyPairs,
//! DeleteKeyPairs, AttachKeyPair and DetachKeyPair.

use base64::Engine;
use serde_json::{json, Value};

use super::{
    has_tags, list_body, name_matches, paginate_by_age, refuse_while_used, tags_json, Ctx, Order,
    Paging,
};
use crate::sim::error::SimError;
use crate::sim::store::{iso_time, new_id, KeyPair};

const KEY_TYPES: &[&str] = &[
    "ssh-rsa",
    "ssh-dss",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
];

/// The MD5 fingerprint of a public key blob as ECS shows it: colon-separated hex pairs
/// (`89:f0:ba:…`), the form `ssh-keygen -l -E md5` prints after `MD5:`.
fn md5_fingerprint(blob: &[u8]) -> String {
    let digest = md5::compute(blob);
    let pairs: Vec<String> = digest.iter().map(|b| format!("{b:02x}")).collect();
    pairs.join(":")
}

/// Checks an OpenSSH public key line and returns `(normalized line, MD5 fingerprint)`.
fn parse_public_key(body: &str) -> Result<(String, String), SimError> {
    let bad = |why: &str| SimError::invalid("PublicKeyBody", why.to_string());
    let mut parts = body.split_whitespace();
    let (Some(kind), Some(b64)) = (parts.next(), parts.next()) else {
        return Err(bad("expected '<type> <base64> [comment]'"));
    };
    if !KEY_TYPES.contains(&kind) {
        return Err(bad("unsupported key type"));
    }
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| bad("key data is not base64"))?;
    let name_len = blob
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let embedded = name_len.and_then(|n| blob.get(4..4 + n));
    if embedded != Some(kind.as_bytes()) {
        return Err(bad("key data does not match its type"));
    }
    Ok((format!("{kind} {b64}"), md5_fingerprint(&blob)))
}

fn check_name(ctx: &Ctx<'_>, region: &str, name: &str) -> Result<(), SimError> {
    if name.len() < 2 || name.len() > 128 {
        return Err(SimError::invalid(
            "KeyPairName",
            "must be 2 to 128 characters",
        ));
    }
    if ctx
        .state
        .key_pairs
        .values()
        .any(|k| k.meta.live() && k.meta.region == region && k.name == name)
    {
        return Err(SimError::bad_request(
            "KeyPair.AlreadyExist",
            format!("The key pair {name} already exists."),
        ));
    }
    Ok(())
}

fn insert(
    ctx: &mut Ctx<'_>,
    region: &str,
    name: &str,
    public_key: String,
    fingerprint: String,
) -> Result<String, SimError> {
    let id = new_id("kp");
    let meta = ctx.meta(id.clone(), region)?;
    ctx.state.key_pairs.insert(
        id.clone(),
        KeyPair {
            meta,
            name: name.to_string(),
            fingerprint,
            public_key,
        },
    );
    Ok(id)
}

pub fn import_key_pair(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let name = ctx.params.req("KeyPairName")?.to_string();
    let (public_key, fingerprint) = parse_public_key(ctx.params.req("PublicKeyBody")?)?;
    check_name(ctx, &region, &name)?;
    let id = insert(ctx, &region, &name, public_key, fingerprint.clone())?;
    Ok(json!({ "KeyPairName": name, "KeyPairFingerPrint": fingerprint, "KeyPairId": id }))
}

pub fn create_key_pair(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    use thrussh_keys::PublicKeyBase64;
    let region = ctx.region()?;
    let name = ctx.params.req("KeyPairName")?.to_string();
    check_name(ctx, &region, &name)?;
    let key = thrussh_keys::key::KeyPair::generate_ed25519()
        .ok_or_else(|| SimError::bad_request("InternalError", "key generation failed"))?;
    // Without thrussh-keys' `openssl` feature, ed25519 is the only kind of key pair.
    let thrussh_keys::key::KeyPair::Ed25519(secret) = &key;
    // OpenSSH's format, not PKCS#8: `ssh -i` (OpenSSH 9.2) cannot load PKCS#8 ed25519 keys.
    let pem = crate::sshkey::encode_ed25519(&secret.key, &name, rand::random());
    let (public_key, fingerprint) =
        parse_public_key(&format!("ssh-ed25519 {}", key.public_key_base64()))?;
    let id = insert(ctx, &region, &name, public_key, fingerprint.clone())?;
    Ok(json!({
        "KeyPairName": name, "KeyPairId": id, "KeyPairFingerPrint": fingerprint,
        "PrivateKeyBody": pem,
    }))
}

pub fn describe_key_pairs(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let p = ctx.params;
    let include_public = p.bool("IncludePublicKey")?.unwrap_or(false);
    let tags = p.tags()?;
    let items: Vec<(u64, Value)> = ctx
        .state
        .key_pairs
        .values()
        .filter(|k| k.meta.live() && k.meta.region == region)
        .filter(|k| {
            p.opt("KeyPairName")
                .is_none_or(|n| name_matches(n, &k.name))
        })
        .filter(|k| {
            p.opt("KeyPairFingerPrint")
                .is_none_or(|f| f == k.fingerprint)
        })
        .filter(|k| has_tags(&k.meta.tags, &tags))
        .map(|k| {
            let mut v = json!({
                "KeyPairName": k.name, "KeyPairFingerPrint": k.fingerprint,
                "CreationTime": iso_time(k.meta.created_ms), "ResourceGroupId": "",
                "Tags": tags_json(&k.meta.tags),
            });
            if include_public {
                v["PublicKey"] = json!(k.public_key);
            }
            (k.meta.created_ms, v)
        })
        .collect();
    let paging = Paging::numbered(10, 50);
    let (page, fields) = paginate_by_age(items, Order::OldestFirst, ctx.params, &paging)?;
    Ok(list_body("KeyPairs", "KeyPair", page, fields))
}

pub fn delete_key_pairs(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let names = ctx
        .params
        .json_list("KeyPairNames")?
        .ok_or_else(|| SimError::MissingParameter("KeyPairNames".into()))?;
    for name in &names {
        refuse_while_used(
            &ctx.state.instances,
            |i| i.meta.region == region && i.key_pair_name.as_deref() == Some(name.as_str()),
            "DependencyViolation.KeyPair",
            |user| {
                format!(
                    "The key pair {name} is bound to instance {user}; delete the instance first."
                )
            },
        )?;
    }
    let now = ctx.now;
    for k in ctx.state.key_pairs.values_mut() {
        if k.meta.live() && k.meta.region == region && names.contains(&k.name) {
            k.meta.deleted_ms = Some(now);
        }
    }
    Ok(json!({}))
}

/// The instances of `InstanceIds` (a JSON list of at most 50), each live in `region` or not.
fn attach_targets(ctx: &Ctx<'_>, region: &str) -> Result<Vec<(String, bool)>, SimError> {
    let ids = ctx
        .params
        .json_list("InstanceIds")?
        .ok_or_else(|| SimError::MissingParameter("InstanceIds".into()))?;
    if ids.is_empty() || ids.len() > 50 {
        return Err(SimError::invalid(
            "InstanceIds",
            "expected 1 to 50 instance ids",
        ));
    }
    Ok(ids
        .into_iter()
        .map(|id| {
            let live = ctx
                .state
                .instances
                .get(&id)
                .is_some_and(|i| i.meta.live() && i.meta.region == region);
            (id, live)
        })
        .collect())
}

/// Sets (`Some`) or clears (`None`) the key pair of each listed instance. Answers per instance, as
/// ECS does: an unknown instance fails alone (`Success: "false"`), the call itself succeeds.
fn bind_key_pair(ctx: &mut Ctx<'_>, attach: bool) -> Result<Value, SimError> {
    let region = ctx.region()?;
    let name = ctx.params.req("KeyPairName")?.to_string();
    let exists = ctx
        .state
        .key_pairs
        .values()
        .any(|k| k.meta.live() && k.meta.region == region && k.name == name);
    if !exists {
        return Err(SimError::not_found(
            "InvalidKeyPairName.NotFound",
            "KeyPairName",
            &name,
        ));
    }
    let targets = attach_targets(ctx, &region)?;
    let mut results = Vec::new();
    let mut failed = 0;
    for (id, live) in targets {
        let (code, message) = if live {
            let inst = ctx.state.instances.get_mut(&id).expect("checked live");
            if attach {
                inst.key_pair_name = Some(name.clone());
            } else if inst.key_pair_name.as_deref() == Some(name.as_str()) {
                inst.key_pair_name = None;
            }
            ("200", "successful")
        } else {
            failed += 1;
            (
                "InvalidInstanceId.NotFound",
                "The specified InstanceId does not exist.",
            )
        };
        results.push(json!({
            "InstanceId": id, "Success": (code == "200").to_string(), "Code": code, "Message": message,
        }));
    }
    Ok(json!({
        "KeyPairName": name, "TotalCount": results.len().to_string(), "FailCount": failed.to_string(),
        "Results": { "Result": results },
    }))
}

pub fn attach_key_pair(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    bind_key_pair(ctx, true)
}

pub fn detach_key_pair(ctx: &mut Ctx<'_>) -> Result<Value, SimError> {
    bind_key_pair(ctx, false)
}
