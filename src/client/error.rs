//! Errors of the ECS client: what the cloud said ([`ApiError`]) and what went wrong on the way
//! ([`ClientError`]), each with a hint that tells the user what to do.

use super::credentials::{CredentialSource, CredentialsError};
use super::product::Product;
use std::fmt;
use std::time::Duration;

/// An error answer from the ECS or VPC API (§2.4 envelope), after the client gave up retrying.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The product that answered (ECS, VPC).
    pub product: Product,
    /// The API action, e.g. `RunInstances`.
    pub action: String,
    /// The `Code` field, e.g. `InvalidImageId.NotFound`.
    pub code: String,
    /// The `Message` field.
    pub message: String,
    /// The `RequestId`, for Alibaba Cloud support and for matching server logs.
    pub request_id: String,
    /// HTTP status of the answer.
    pub http_status: u16,
    /// The `Recommend` troubleshooting link, when the cloud sends one.
    pub recommend: Option<String>,
    /// What the user should do, derived from the code (see [`hint_for`]).
    pub hint: Option<String>,
    /// How many attempts were made (1 = sent once, not retried).
    pub attempts: u32,
}

impl ApiError {
    /// True for `*.NotFound` codes: the resource does not exist (callers use this to treat
    /// deletes as done).
    pub fn is_not_found(&self) -> bool {
        self.code.ends_with(".NotFound") || self.http_status == 404
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} failed: {} (HTTP {}, RequestId {}",
            self.product, self.action, self.code, self.http_status, self.request_id
        )?;
        if self.attempts > 1 {
            write!(f, ", after {} attempts", self.attempts)?;
        }
        write!(f, "): {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " Hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// Every way a client call can fail.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The cloud answered with an error (non-retryable, or retries exhausted).
    #[error(transparent)]
    Api(Box<ApiError>),
    /// No answer could be obtained (connection refused, timeouts) within the retry budget.
    #[error(
        "{product} {action} failed: no response after {attempts} attempts over {elapsed:?} \
         ({endpoint}). Hint: check network access to the endpoint (or {settings})",
        settings = .product.endpoint_settings()
    )]
    Transport {
        product: Product,
        action: String,
        endpoint: String,
        attempts: u32,
        elapsed: Duration,
        #[source]
        source: reqwest::Error,
    },
    /// A mutating action without ClientToken support was sent, but no answer came back: the cloud
    /// may or may not have executed it, so the client did not retry it blindly.
    #[error(
        "{product} {action} outcome unknown: the request was sent but the response was lost ({source}). \
         It may have been executed. Hint: look the resource up (by name or bakerd tags) before \
         repeating the call"
    )]
    OutcomeUnknown {
        product: Product,
        action: String,
        #[source]
        source: reqwest::Error,
    },
    /// The cloud answered 2xx but the body was not what this action returns.
    #[error(
        "{product} {action} returned an unexpected response body ({source}); body starts: \
         {body_start}"
    )]
    Decode {
        product: Product,
        action: String,
        body_start: String,
        #[source]
        source: serde_json::Error,
    },
    /// The client could not be built (bad endpoint, TLS setup).
    #[error("cannot set up the ECS client: {0}")]
    Config(String),
    /// Nothing answers at the endpoint (connection refused, unknown host): not retried.
    #[error(
        "{product} {action} failed: cannot reach the endpoint {endpoint} ({cause}). Hint: check \
         {settings} (for the simulator, start `bakerd sim` and use the address it prints)",
        settings = .product.endpoint_settings()
    )]
    Unreachable {
        product: Product,
        action: String,
        endpoint: String,
        cause: String,
    },
    /// An endpoint given without `http://` or `https://`.
    #[error(
        "endpoint `{endpoint}` (from {from}) has no scheme; write http://{endpoint} (e.g. `bakerd \
         sim`) or https://{endpoint}"
    )]
    EndpointScheme {
        endpoint: String,
        from: &'static str,
    },
    /// No usable credentials.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

impl From<ApiError> for ClientError {
    fn from(e: ApiError) -> Self {
        ClientError::Api(Box::new(e))
    }
}

impl ClientError {
    /// The API error, if the cloud answered.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            ClientError::Api(e) => Some(e.as_ref()),
            _ => None,
        }
    }

    /// True when the cloud said the resource does not exist.
    pub fn is_not_found(&self) -> bool {
        self.api().is_some_and(ApiError::is_not_found)
    }

    /// The error code, if the cloud answered.
    pub fn code(&self) -> Option<&str> {
        self.api().map(|e| e.code.as_str())
    }
}

/// What the hint builder knows about the request that failed.
pub struct HintContext<'a> {
    pub action: &'a str,
    pub access_key_id: &'a str,
    pub credential_source: &'a CredentialSource,
    /// Our string to sign for the failed attempt (compared with the server's).
    pub our_string_to_sign: &'a str,
}

/// The hint for an error code: what to do about it.
pub fn hint_for(code: &str, message: &str, ctx: &HintContext<'_>) -> Option<String> {
    let source = ctx.credential_source;
    let id = ctx.access_key_id;
    Some(match code {
        "InvalidAccessKeyId.NotFound" | "InvalidAccessKeyId" => format!(
            "AccessKeyId {id} (from {source}) is unknown to this endpoint; check that source, or \
             whether an earlier source in the chain shadows the key you meant"
        ),
        "InvalidAccessKeyId.Inactive" | "Forbidden.AccessKeyDisabled" => format!(
            "AccessKeyId {id} (from {source}) is disabled; enable it in the RAM console or use another"
        ),
        "SignatureDoesNotMatch" | "IncompleteSignature" => signature_hint(message, ctx),
        "InvalidTimeStamp.Expired" | "InvalidTimeStamp.Format" | "IllegalTimestamp" => {
            "the local clock is off by more than 15 minutes; sync it (e.g. with NTP)".into()
        }
        c if c.starts_with("Forbidden.RAM") || c == "Forbidden" || c == "Forbidden.SubUser" => {
            format!(
                "the RAM user of AccessKeyId {id} lacks the permission ecs:{}; grant it in a RAM policy",
                ctx.action
            )
        }
        c if c.starts_with("InvalidParameter") || c.starts_with("Missing") => {
            parameter_hint(c, message)
        }
        c if c.starts_with("Throttling") => {
            "the API is throttled for this account and region; retry later or lower concurrency".into()
        }
        "IdempotentParameterMismatch" | "InvalidIdempotenceParameter.Mismatch" => {
            "the same ClientToken was used earlier with different parameters; this is a bakerd bug \
             if it happens on resume"
                .into()
        }
        "InvalidRegionId.NotFound" => {
            "check the spec's `region`; `bakerd validate --remote <spec>` lists the regions of \
             this account and endpoint"
                .into()
        }
        "InvalidImageName.Duplicated" => {
            "an image of this name exists in the region; set `image.force: true` in the spec to \
             replace it, or make `image.name` unique (e.g. with {{timestamp}})"
                .into()
        }
        c if c.starts_with("QuotaExceed") => quota_hint(c),
        c if c.ends_with(".NotFound") => not_found_hint(c),
        c if c.starts_with("IncorrectInstanceStatus") => {
            "the instance is not in the state this action needs; wait for it and retry".into()
        }
        _ => return None,
    })
}

/// A used-up quota (`QuotaExceed.ElasticQuota`, `QuotaExceeded.Vpc`, …): where its numbers are
/// and where it is raised.
fn quota_hint(code: &str) -> String {
    let product = match code {
        "QuotaExceed.DiskCapacity" => "disk",
        c if c.ends_with(".Vpc") || c.ends_with(".VSwitch") => "vpc",
        _ => "ecs",
    };
    format!(
        "an account quota is used up; `bakerd validate --remote <spec>` shows the numbers it can \
         read, `bakerd gc` lists what bakerd left behind, and Quota Center raises the quota: \
         https://quotas.console.aliyun.com/products/{product}/quotas"
    )
}

/// `InvalidImageId.NotFound` → "the ImageId … check `source_image.id`".
fn not_found_hint(code: &str) -> String {
    let what = code
        .trim_end_matches(".NotFound")
        .trim_start_matches("Invalid");
    let field = match what {
        "ImageId" => "`source_image.id` (or `source_image.family`)",
        "InstanceType" => "`instance.type`",
        "SecurityGroupId" => "`instance.security_group_id`",
        "VSwitchId" => "`instance.vswitch_id`",
        "ZoneId" => "`instance.zone`",
        "SnapshotId" => "`instance.data_disks[].snapshot_id`",
        _ => "spec field that names it",
    };
    format!(
        "the {what} does not exist in this region or is not visible to this account; check the \
         {field} and the `region` in the spec"
    )
}

fn signature_hint(message: &str, ctx: &HintContext<'_>) -> String {
    const MARKER: &str = "server string to sign is:";
    let Some(pos) = message.find(MARKER) else {
        return format!(
            "the signature was refused; check the AccessKeySecret for {} (from {})",
            ctx.access_key_id, ctx.credential_source
        );
    };
    let server = message[pos + MARKER.len()..].trim();
    if server == ctx.our_string_to_sign {
        format!(
            "the server computed the same string to sign as bakerd, so the AccessKeySecret for {} \
             (from {}) is wrong",
            ctx.access_key_id, ctx.credential_source
        )
    } else {
        format!(
            "the server's string to sign differs from bakerd's (a proxy may have rewritten the \
             request, or the endpoint expects another signature style); server: {server:?}, bakerd: {:?}",
            ctx.our_string_to_sign
        )
    }
}

fn parameter_hint(code: &str, message: &str) -> String {
    let from_code = code
        .split_once('.')
        .map(|(_, p)| p)
        .filter(|p| !matches!(*p, "IsNull" | "Malformed" | "Invalid"))
        .or_else(|| {
            code.strip_prefix("Missing")
                .filter(|p| !p.is_empty() && *p != "Parameter")
        });
    let from_message = quoted_word(message);
    match from_message.or(from_code.map(str::to_string)) {
        Some(p) => format!("check the parameter {p} (see the message)"),
        None => "check the parameters named in the message".into(),
    }
}

/// The first word in quotes (`"X"`, `'X'`) or after `parameter ` in `message`.
fn quoted_word(message: &str) -> Option<String> {
    for q in ['"', '\''] {
        let mut parts = message.split(q);
        if let (Some(_), Some(inner)) = (parts.next(), parts.next()) {
            if !inner.is_empty() && !inner.contains(' ') {
                return Some(inner.to_string());
            }
        }
    }
    let lower = message.to_ascii_lowercase();
    let at = lower.find("parameter ")? + "parameter ".len();
    let word: String = message[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    (!word.is_empty() && word != "is" && word != "that").then_some(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(sts: &'a str, source: &'a CredentialSource) -> HintContext<'a> {
        HintContext {
            action: "RunInstances",
            access_key_id: "LTAIexample",
            credential_source: source,
            our_string_to_sign: sts,
        }
    }

    #[test]
    fn display_reads_like_a_sentence_with_the_hint() {
        let e = ApiError {
            product: Product::Ecs,
            action: "RunInstances".into(),
            code: "InvalidImageId.NotFound".into(),
            message: "The specified ImageId does not exist.".into(),
            request_id: "7A1B".into(),
            http_status: 404,
            recommend: None,
            hint: Some("use an ImageId that exists in the region".into()),
            attempts: 1,
        };
        assert_eq!(
            e.to_string(),
            "ECS RunInstances failed: InvalidImageId.NotFound (HTTP 404, RequestId 7A1B): \
             The specified ImageId does not exist. Hint: use an ImageId that exists in the region"
        );
        assert!(e.is_not_found());
        let vpc = ApiError {
            product: Product::Vpc,
            action: "CreateVpc".into(),
            ..e
        };
        assert!(
            vpc.to_string().starts_with("VPC CreateVpc failed: "),
            "{vpc}"
        );
    }

    #[test]
    fn not_found_names_the_kind_of_id() {
        let src = CredentialSource::Explicit;
        let h = hint_for("InvalidImageId.NotFound", "", &ctx("", &src)).unwrap();
        assert!(h.starts_with("the ImageId does not exist"), "{h}");
    }

    #[test]
    fn not_found_and_clash_hints_name_the_spec_field_to_change() {
        let src = CredentialSource::Explicit;
        let h = hint_for("InvalidImageId.NotFound", "", &ctx("", &src)).unwrap();
        assert!(h.contains("`source_image.id`"), "{h}");
        let h = hint_for("InvalidImageName.Duplicated", "", &ctx("", &src)).unwrap();
        assert!(
            h.contains("`image.force: true`") && h.contains("`image.name`"),
            "{h}"
        );
        let h = hint_for("InvalidRegionId.NotFound", "", &ctx("", &src)).unwrap();
        assert!(h.contains("`bakerd validate --remote <spec>`"), "{h}");
    }

    #[test]
    fn a_used_up_quota_points_to_validate_gc_and_the_quota_center_of_its_product() {
        let src = CredentialSource::Explicit;
        let h = hint_for("QuotaExceed.ElasticQuota", "", &ctx("", &src)).unwrap();
        assert!(h.contains("`bakerd validate --remote <spec>`"), "{h}");
        assert!(h.contains("`bakerd gc`"), "{h}");
        assert!(h.ends_with("/products/ecs/quotas"), "{h}");
        let h = hint_for("QuotaExceed.DiskCapacity", "", &ctx("", &src)).unwrap();
        assert!(h.ends_with("/products/disk/quotas"), "{h}");
        let h = hint_for("QuotaExceeded.Vpc", "", &ctx("", &src)).unwrap();
        assert!(h.ends_with("/products/vpc/quotas"), "{h}");
    }

    #[test]
    fn access_key_not_found_names_the_credential_source() {
        let src = CredentialSource::AliyunEnv;
        let h = hint_for("InvalidAccessKeyId.NotFound", "", &ctx("", &src)).unwrap();
        assert!(h.contains("ALIYUN_ACCESS_KEY_ID"), "{h}");
        assert!(h.contains("LTAIexample"), "{h}");
    }

    #[test]
    fn forbidden_ram_names_the_missing_permission() {
        let src = CredentialSource::Explicit;
        let h = hint_for("Forbidden.RAM", "User not authorized", &ctx("", &src)).unwrap();
        assert!(h.contains("ecs:RunInstances"), "{h}");
    }

    #[test]
    fn invalid_parameter_names_the_parameter() {
        let src = CredentialSource::Explicit;
        let c = ctx("", &src);
        let h = hint_for(
            "InvalidParameter",
            "The specified parameter \"InstanceType\" is not valid.",
            &c,
        )
        .unwrap();
        assert!(h.contains("InstanceType"), "{h}");
        let h = hint_for("MissingParameter.RegionId", "RegionId is mandatory", &c).unwrap();
        assert!(h.contains("RegionId"), "{h}");
        let h = hint_for(
            "MissingImageId",
            "ImageId is mandatory for this action.",
            &c,
        )
        .unwrap();
        assert!(h.contains("ImageId"), "{h}");
    }

    #[test]
    fn signature_mismatch_with_identical_strings_blames_the_secret() {
        let src = CredentialSource::AlibabaCloudEnv;
        let msg = "Specified signature is not matched with our calculation. server string to sign is:GET&%2F&A";
        let h = hint_for("SignatureDoesNotMatch", msg, &ctx("GET&%2F&A", &src)).unwrap();
        assert!(h.contains("AccessKeySecret"), "{h}");
        assert!(h.contains("is wrong"), "{h}");
        let h = hint_for("SignatureDoesNotMatch", msg, &ctx("GET&%2F&B", &src)).unwrap();
        assert!(h.contains("differs"), "{h}");
        assert!(h.contains("GET&%2F&B"), "{h}");
    }
}
