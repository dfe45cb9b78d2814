//! The simulator's request pipeline, independent of HTTP: parameters → authentication → faults →
//! ClientToken replay → action → persistence → call log.
//!
//! Guarantees: a mutating action's effects and its ClientToken result are in one atomic state write,
//! on disk before the response leaves ([`super::commit`] groups the writes of concurrent calls). Every
//! API answer, reads included, leaves only once every API mutation made before it is on disk, so no
//! client ever saw what a SIGKILL of the simulator could take back. The call is in the call log
//! ([`super::calllog`]) before its answer leaves.
//! Assumptions: one simulator process per data dir.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::actions::{self, Api, Ctx};
use super::auth::{self, Credentials, SignedRequest};
use super::calllog::{CallLog, CallRecord};
use super::commit::Committer;
use super::error::SimError;
use super::faults::{FaultKind, Faults};
use super::idempotency;
use super::lifecycle::Latencies;
use super::machine::Machines;
use super::nonces::NonceCache;
use super::params::Params;
use super::quotas::Quotas;
use super::store::{self, State};

/// The shared simulator.
pub struct Sim {
    pub data_dir: PathBuf,
    pub creds: Credentials,
    pub latencies: Latencies,
    pub machines: Machines,
    state: Mutex<State>,
    committer: Committer,
    calls: Mutex<CallLog>,
    pub faults: Mutex<Faults>,
    /// The account's quotas and the actions its RAM policy denies.
    pub quotas: Quotas,
    nonces: Mutex<NonceCache>,
}

/// What the simulator keeps in its data dir, loaded.
pub struct Stores {
    pub state: State,
    pub calls: CallLog,
    pub nonces: NonceCache,
}

/// An HTTP request as the pipeline needs it.
#[derive(Debug)]
pub struct ApiRequest {
    pub method: String,
    pub raw_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What to send back.
#[derive(Debug)]
pub enum Outcome {
    Reply {
        status: StatusCode,
        body: Value,
        /// Render as XML (`Format=XML`), with this root element.
        xml_root: Option<String>,
    },
    /// Close the connection without answering (injected fault).
    Drop,
}

/// The result of running an action, before rendering.
struct Ran {
    result: Result<Value, SimError>,
    fault: Option<FaultKind>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sim {
    pub fn new(
        data_dir: PathBuf,
        creds: Credentials,
        latencies: Latencies,
        machines: Machines,
        faults: Faults,
        stores: Stores,
    ) -> Self {
        Sim {
            committer: Committer::new(data_dir.clone()),
            data_dir,
            creds,
            latencies,
            machines,
            state: Mutex::new(stores.state),
            calls: Mutex::new(stores.calls),
            faults: Mutex::new(faults),
            quotas: Quotas::default(),
            nonces: Mutex::new(stores.nonces),
        }
    }

    /// The account's quotas and denied actions (default: [`Quotas::default`]).
    pub fn with_quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = quotas;
        self
    }

    pub fn lock_state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Records that the state changed by itself (ticker, Cloud Assistant runner); the next
    /// [`Sim::flush`] or API write saves it.
    pub fn mark_dirty(&self) {
        self.committer.changed();
    }

    /// Writes the state if something changed since the last write. Call it without the state lock.
    pub fn flush(&self) -> std::io::Result<()> {
        self.committer.flush(&self.state)
    }

    /// The `/_sim/calls` body.
    pub fn calls_report(&self) -> Value {
        lock(&self.calls).report()
    }

    /// Handles one ECS API request.
    pub fn handle(&self, req: &ApiRequest) -> Outcome {
        let request_id = uuid::Uuid::new_v4().to_string().to_uppercase();
        let now = store::now_ms();
        let mut params = Params::default();
        params.add_urlencoded(req.raw_query.as_bytes());
        let query = params.pairs();
        if is_form(&req.headers) {
            params.add_urlencoded(&req.body);
        }
        let signed = SignedRequest {
            method: &req.method,
            params: &params,
            query: &query,
            headers: &req.headers,
            body: &req.body,
        };
        let verified = match super::sts::anonymous(&params) {
            Some(anonymous) => Ok(anonymous),
            None => auth::verify(&self.creds, &mut lock(&self.nonces), &signed, now),
        };
        let action = match &verified {
            Ok(v) => v.action.clone(),
            Err(_) => header(&req.headers, "x-acs-action")
                .or(params.opt("Action"))
                .unwrap_or("")
                .to_string(),
        };
        let api = Api::of_version(request_version(&req.headers, &params));
        let ran = match verified {
            Ok(_) if super::sts::handles(&action) => Ran {
                result: super::sts::act(&self.creds, &action, &params, now),
                fault: None,
            },
            Ok(_) => self.run(api, &action, &params, now),
            Err(e) => Ran {
                result: Err(e),
                fault: None,
            },
        };
        self.render(req, &params, &action, &request_id, ran, now)
    }

    /// Injects faults around the action and persists its effects.
    fn run(&self, api: Api, action: &str, params: &Params, now: u64) -> Ran {
        if self.quotas.denies(action) {
            return Ran {
                result: Err(SimError::forbidden(
                    "Forbidden.RAM",
                    "User not authorized to operate on the specified resource, or this API doesn't support RAM.",
                )),
                fault: None,
            };
        }
        let fault = lock(&self.faults).pick(action);
        let pre_error = match fault {
            Some(FaultKind::Throttling) => Some(injected(StatusCode::BAD_REQUEST, "Throttling", "Request was denied due to request throttling.")),
            Some(FaultKind::InternalError) => Some(injected(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "The request processing has failed due to some unknown error, exception or failure.")),
            Some(FaultKind::ServiceUnavailable) => Some(injected(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "The request has failed due to a temporary failure of the server.")),
            _ => None,
        };
        if let Some(e) = pre_error {
            return Ran {
                result: Err(e),
                fault,
            };
        }
        if fault == Some(FaultKind::Reset) {
            return Ran {
                result: Err(injected(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "connection reset",
                )),
                fault,
            };
        }
        let result = self.act(api, action, params, now);
        Ran { result, fault }
    }

    /// Runs the action, then waits until what it did (and every API change before it) is on disk.
    fn act(&self, api: Api, action: &str, params: &Params, now: u64) -> Result<Value, SimError> {
        let (result, upto) = self.act_locked(api, action, params, now);
        self.committer
            .commit(&self.state, upto)
            .map_err(SimError::Persist)?;
        result
    }

    /// Runs the action under the state lock, with ClientToken replay; returns its result and the
    /// change the answer must wait for.
    fn act_locked(
        &self,
        api: Api,
        action: &str,
        params: &Params,
        now: u64,
    ) -> (Result<Value, SimError>, u64) {
        let mut state = self.lock_state();
        let result = self.dispatch(&mut state, api, action, params, now);
        let upto = match result {
            Ok(_) if !actions::is_read_only(action) => self.committer.api_changed(),
            _ => self.committer.api_changes(),
        };
        (result, upto)
    }

    fn dispatch(
        &self,
        state: &mut State,
        api: Api,
        action: &str,
        params: &Params,
        now: u64,
    ) -> Result<Value, SimError> {
        let token = idempotency::token_of(action, params);
        if let Some(token) = token {
            if let Some(previous) = idempotency::replay(state, action, token, params)? {
                return Ok(previous);
            }
        }
        let mut faults = lock(&self.faults);
        let mut ctx = Ctx {
            api,
            state,
            machines: &self.machines,
            latencies: &self.latencies,
            faults: &mut faults,
            quotas: &self.quotas,
            params,
            now,
        };
        let body = actions::dispatch(action, &mut ctx)?;
        drop(faults);
        if let Some(token) = token {
            idempotency::remember(state, action, token, params, &body);
        }
        Ok(body)
    }

    /// Logs the call and turns the result into an HTTP answer.
    fn render(
        &self,
        req: &ApiRequest,
        params: &Params,
        action: &str,
        request_id: &str,
        ran: Ran,
        now: u64,
    ) -> Outcome {
        let acted_fault = ran.fault.filter(|f| f.acts() || *f == FaultKind::Reset);
        let result = match acted_fault {
            Some(FaultKind::ActedThen500) => Err(injected(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "The request processing has failed due to some unknown error, exception or failure.")),
            _ => ran.result,
        };
        let dropped = matches!(
            acted_fault,
            Some(FaultKind::Reset | FaultKind::ActedThenDrop)
        );
        let (status, body) = match result {
            Ok(mut body) => {
                if let Value::Object(m) = &mut body {
                    m.insert("RequestId".into(), json!(request_id));
                }
                (StatusCode::OK, body)
            }
            Err(e) => {
                let api = Api::of_version(request_version(&req.headers, params));
                (e.status(), error_body(&e, request_id, params, api))
            }
        };
        self.log_call(
            params,
            action,
            request_id,
            status,
            &body,
            ran.fault,
            dropped,
            now,
            &req.headers,
        );
        if dropped {
            return Outcome::Drop;
        }
        let xml = params
            .opt("Format")
            .is_some_and(|f| f.eq_ignore_ascii_case("xml"));
        let xml_root = xml.then(|| {
            if status.is_success() {
                format!("{action}Response")
            } else {
                "Error".to_string()
            }
        });
        Outcome::Reply {
            status,
            body,
            xml_root,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn log_call(
        &self,
        params: &Params,
        action: &str,
        request_id: &str,
        status: StatusCode,
        body: &Value,
        fault: Option<FaultKind>,
        dropped: bool,
        now: u64,
        headers: &[(String, String)],
    ) {
        let record = CallRecord {
            time_ms: now,
            action: action.to_string(),
            region: params.opt("RegionId").map(str::to_string),
            client_token: params.opt("ClientToken").map(str::to_string),
            signature_nonce: params
                .opt("SignatureNonce")
                .or(header(headers, "x-acs-signature-nonce"))
                .map(str::to_string),
            signature_version: match header(headers, "authorization") {
                Some(a) if a.trim_start().starts_with(crate::sign::V3_ALGORITHM) => "v3".into(),
                _ => "v1".into(),
            },
            version: request_version(headers, params)
                .unwrap_or_default()
                .to_string(),
            http_status: if dropped { 0 } else { status.as_u16() },
            error_code: body.get("Code").and_then(Value::as_str).map(str::to_string),
            fault: fault.map(|f| f.name().to_string()),
            request_id: request_id.to_string(),
        };
        if let Err(e) = lock(&self.calls).append(record) {
            tracing::warn!(error = %e, "the call stays in memory only");
        }
    }
}

fn injected(status: StatusCode, code: &'static str, message: &str) -> SimError {
    SimError::Injected {
        status,
        code,
        message: message.to_string(),
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The API `Version` a request names: `x-acs-version` (V3) or the `Version` parameter (V1).
fn request_version<'a>(headers: &'a [(String, String)], params: &'a Params) -> Option<&'a str> {
    header(headers, "x-acs-version").or(params.opt("Version"))
}

fn is_form(headers: &[(String, String)]) -> bool {
    header(headers, "content-type").is_some_and(|c| {
        c.to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    })
}

/// The error envelope (ECS and VPC share it; only the host and product differ).
fn error_body(e: &SimError, request_id: &str, params: &Params, api: Api) -> Value {
    let (host, product) = api.host_and_product();
    let host = match params.opt("RegionId") {
        Some(r) => format!("{host}.{r}.aliyuncs.com"),
        None => format!("{host}.aliyuncs.com"),
    };
    let code = e.code();
    json!({
        "RequestId": request_id,
        "HostId": host,
        "Code": code,
        "Message": e.to_string(),
        "Recommend": format!("https://api.aliyun.com/troubleshoot?q={code}&product={product}&requestId={request_id}"),
    })
}
