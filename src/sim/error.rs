//! The simulator's API errors: each maps to one ECS error envelope (HTTP status, `Code`, `Message`).

use axum::http::StatusCode;

use super::machine::MachineError;
use super::nonces::NonceLogError;

/// A failed ECS API call, as the simulator answers it.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A required parameter is absent.
    #[error("The input parameter \"{0}\" that is mandatory for processing this request is not supplied.")]
    MissingParameter(String),
    /// A parameter has a value the action does not accept.
    #[error("The specified parameter \"{name}\" is not valid: {reason}")]
    InvalidParameter { name: String, reason: String },
    /// A referenced resource does not exist (or was deleted).
    #[error("The specified {what} {id} does not exist.")]
    NotFound {
        code: &'static str,
        what: &'static str,
        id: String,
    },
    /// A documented precondition failed (state, dependency, duplicate name, ...).
    #[error("{message}")]
    Precondition {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// Authentication failed (signature, nonce, timestamp, access key, token).
    #[error("{message}")]
    Auth {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// The action name is unknown. The POP gateway answers 404 `InvalidAction.NotFound` with this
    /// message (docs/sim-packer-actions.md); the action is not named in it.
    #[error("Specified api is not found, please check your url and method.")]
    InvalidAction(String),
    /// The machine layer failed while acting on a resource.
    #[error("The request processing has failed due to some unknown error: {0}")]
    Machine(#[source] MachineError),
    /// The simulator's state could not be written to its data dir.
    #[error("The request processing has failed due to some unknown error: saving state: {0}")]
    Persist(#[source] std::io::Error),
    /// A request's nonce could not be recorded, so it is refused rather than left replayable.
    #[error("The request processing has failed due to some unknown error: {0}")]
    NonceLog(#[source] NonceLogError),
    /// Injected fault or throttle.
    #[error("{message}")]
    Injected {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
}

impl SimError {
    /// The ECS error `Code`.
    pub fn code(&self) -> String {
        match self {
            SimError::MissingParameter(_) => "MissingParameter".into(),
            SimError::InvalidParameter { .. } => "InvalidParameter".into(),
            SimError::NotFound { code, .. } => (*code).into(),
            SimError::Precondition { code, .. }
            | SimError::Auth { code, .. }
            | SimError::Injected { code, .. } => (*code).into(),
            SimError::InvalidAction(_) => "InvalidAction.NotFound".into(),
            SimError::Machine(_) | SimError::Persist(_) | SimError::NonceLog(_) => {
                "InternalError".into()
            }
        }
    }

    /// The documented HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            SimError::MissingParameter(_) | SimError::InvalidParameter { .. } => {
                StatusCode::BAD_REQUEST
            }
            SimError::NotFound { .. } => StatusCode::NOT_FOUND,
            SimError::Precondition { status, .. }
            | SimError::Auth { status, .. }
            | SimError::Injected { status, .. } => *status,
            SimError::InvalidAction(_) => StatusCode::NOT_FOUND,
            SimError::Machine(_) | SimError::Persist(_) | SimError::NonceLog(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    pub fn invalid(name: &str, reason: impl Into<String>) -> Self {
        SimError::InvalidParameter {
            name: name.to_string(),
            reason: reason.into(),
        }
    }

    pub fn not_found(code: &'static str, what: &'static str, id: &str) -> Self {
        SimError::NotFound {
            code,
            what,
            id: id.to_string(),
        }
    }

    /// A precondition failure answered with HTTP 403 (the common case in the ECS docs).
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        SimError::Precondition {
            status: StatusCode::FORBIDDEN,
            code,
            message: message.into(),
        }
    }

    /// A precondition failure answered with HTTP 400.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        SimError::Precondition {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    pub fn auth(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        SimError::Auth {
            status,
            code,
            message: message.into(),
        }
    }
}

impl From<MachineError> for SimError {
    fn from(e: MachineError) -> Self {
        SimError::Machine(e)
    }
}
