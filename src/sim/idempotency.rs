//! ClientToken semantics (`docs/ecs-api.md` §5): the same token with the same parameters returns the
//! first call's result and creates nothing; with different parameters it fails with
//! `IdempotentParameterMismatch`.
//!
//! Guarantees: a result is remembered in the same state write as the resources it created, so a
//! retry after "acted but the response was lost" (even across a simulator restart) finds it.
//! Caveats: tokens never expire (their lifetime is undocumented).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::SimError;
use super::params::Params;
use super::store::State;

/// The actions that accept `ClientToken` (ecs-api.md §5); every other action ignores it.
pub const TOKEN_ACTIONS: &[&str] = &[
    "RunInstances",
    "CreateInstance",
    "CreateImage",
    "CopyImage",
    "CreateSnapshot",
    "CreateSecurityGroup",
    "AuthorizeSecurityGroup",
    "AuthorizeSecurityGroupEgress",
    "AllocateEipAddress",
    "CreateVpc",
    "CreateVSwitch",
    "DeleteVpc",
    "RunCommand",
    "CreateCommand",
    "InvokeCommand",
    "SendFile",
];

/// What a first call with a token asked for and what it answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenEntry {
    pub params: BTreeMap<String, String>,
    pub response: Value,
}

/// The token of this request if the action honours tokens.
pub fn token_of<'p>(action: &str, params: &'p Params) -> Option<&'p str> {
    if TOKEN_ACTIONS.contains(&action) {
        params.opt("ClientToken")
    } else {
        None
    }
}

fn key(action: &str, token: &str) -> String {
    format!("{action}/{token}")
}

/// Validates the token's format (≤ 64 ASCII characters).
pub fn check_token(token: &str) -> Result<(), SimError> {
    if token.len() > 64 || !token.is_ascii() {
        return Err(SimError::invalid(
            "ClientToken",
            "must be at most 64 ASCII characters",
        ));
    }
    Ok(())
}

/// The remembered response for a repeated token, or `None` for a fresh token.
pub fn replay(
    state: &State,
    action: &str,
    token: &str,
    params: &Params,
) -> Result<Option<Value>, SimError> {
    check_token(token)?;
    let Some(entry) = state.tokens.get(&key(action, token)) else {
        return Ok(None);
    };
    if entry.params != params.meaning() {
        return Err(SimError::bad_request(
            "IdempotentParameterMismatch",
            format!(
                "The ClientToken {token} was already used by a {action} request with different parameters."
            ),
        ));
    }
    Ok(Some(entry.response.clone()))
}

/// Remembers the first successful response for `token`.
pub fn remember(state: &mut State, action: &str, token: &str, params: &Params, response: &Value) {
    state.tokens.insert(
        key(action, token),
        TokenEntry {
            params: params.meaning(),
            response: response.clone(),
        },
    );
}
