//! The frozen spec: the form the reconciler stores in a build's state (sled, JSON), never holding a
//! secret.
//!
//! Shape: `{"format": "bakerd-frozen-spec/1", "base_dir": "/abs/dir", "credentials_withheld": bool,
//! "spec": {…the spec's serde form…}}`. `base_dir` is kept (the spec's own serde form skips it) so a
//! resumed build finds its scripts; it is made absolute, so resuming from another directory works.
//!
//! Credentials: an inline access key secret (`access_key_secret` in a YAML spec, or a secret given
//! literally or by `-var` in a Packer template) is removed: the frozen spec has no `credentials`
//! (the default chain) and `credentials_withheld: true`. On resume the reconciler gets them back from
//! the original spec file (it knows the path: load it again with `SpecSource::load` and copy its
//! `credentials`), or, without the file, uses the environment chain (`ALIBABA_CLOUD_ACCESS_KEY_*`).
//! Credentials that only name a source (environment variable, profile) are frozen as they are.

use super::{Credentials, SecretSource, Spec, SpecError};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Version of the frozen form; a state written with another version is refused, not misread.
pub const FROZEN_FORMAT: &str = "bakerd-frozen-spec/1";

pub(super) fn freeze(spec: &Spec) -> Value {
    let mut stored = spec.clone();
    let withheld = holds_inline_secret(&stored.credentials);
    if withheld {
        stored.credentials = Credentials::Default;
    }
    // Serializing plain structs, strings and maps to JSON cannot fail.
    let body = serde_json::to_value(&stored).expect("spec serializes to JSON");
    json!({
        "format": FROZEN_FORMAT,
        "base_dir": absolute(&spec.base_dir),
        "credentials_withheld": withheld,
        "spec": body,
    })
}

pub(super) fn thaw(frozen: &Value) -> Result<Spec, SpecError> {
    let format = frozen.get("format").and_then(Value::as_str);
    if format != Some(FROZEN_FORMAT) {
        return Err(damaged(format!(
            "its format is {}, expected `{FROZEN_FORMAT}`",
            format.map_or("missing".to_string(), |f| format!("`{f}`"))
        )));
    }
    let base_dir = frozen
        .get("base_dir")
        .and_then(Value::as_str)
        .ok_or_else(|| damaged("`base_dir` is missing".to_string()))?;
    let body = frozen
        .get("spec")
        .ok_or_else(|| damaged("`spec` is missing".to_string()))?;
    let mut spec: Spec = serde_path_to_error::deserialize(body)
        .map_err(|error| damaged(format!("at `{}`: {}", error.path(), error.inner())))?;
    spec.base_dir = PathBuf::from(base_dir);
    Ok(spec)
}

/// Whether [`freeze`] removed the credentials, so the caller must supply them again.
pub(super) fn withheld(frozen: &Value) -> bool {
    frozen
        .get("credentials_withheld")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn holds_inline_secret(credentials: &Credentials) -> bool {
    matches!(
        credentials,
        Credentials::AccessKey {
            secret: SecretSource::Inline(_),
            ..
        }
    )
}

/// `path` made absolute against the current directory; kept as is if that fails (no current dir).
fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

fn damaged(detail: String) -> SpecError {
    SpecError::Frozen { detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "CANARY-secret-7f3a9c";

    fn spec(credentials: &str) -> Spec {
        let yaml = format!(
            "region: cn-hangzhou\n{credentials}source_image: {{ id: img-1 }}\n\
             instance: {{ type: ecs.g7.large }}\n\
             provisioners:\n  - shell: {{ inline: [\"echo hi\"], environment: {{ A: b }} }}\n\
             image: {{ name: \"demo-{{{{timestamp}}}}\" }}\n"
        );
        Spec::from_yaml_str(&yaml, "specs").unwrap()
    }

    fn inline_secret_spec() -> Spec {
        spec(&format!(
            "credentials: {{ access_key_id: LTAIid, access_key_secret: {CANARY} }}\n"
        ))
    }

    #[test]
    fn a_canary_secret_never_appears_in_the_frozen_spec() {
        let original = inline_secret_spec();
        let frozen = original.frozen();
        let text = serde_json::to_string(&frozen).unwrap();
        assert!(!text.contains(CANARY), "{text}");
        assert!(
            !text.contains("LTAIid"),
            "credentials are removed whole: {text}"
        );
        assert!(Spec::frozen_withholds_credentials(&frozen));
    }

    #[test]
    fn thawing_gives_the_spec_back_with_default_credentials_when_withheld() {
        let original = inline_secret_spec();
        let thawed = Spec::from_frozen(&original.frozen()).unwrap();
        assert_eq!(thawed.credentials, Credentials::Default);
        assert!(thawed.base_dir.is_absolute());
        assert!(thawed.base_dir.ends_with("specs"));
        let mut expected = original;
        expected.credentials = Credentials::Default;
        expected.base_dir = thawed.base_dir.clone();
        assert_eq!(thawed, expected);
    }

    #[test]
    fn credentials_that_name_a_source_are_kept() {
        let original =
            spec("credentials: { access_key_id: LTAIid, access_key_secret_env: MY_SECRET }\n");
        let frozen = original.frozen();
        assert!(!Spec::frozen_withholds_credentials(&frozen));
        let thawed = Spec::from_frozen(&frozen).unwrap();
        assert_eq!(thawed.credentials, original.credentials);
        assert_eq!(thawed.provisioners, original.provisioners);
        assert_eq!(thawed.hash().ok(), original.hash().ok());
    }

    #[test]
    fn an_unknown_format_or_damaged_body_is_refused_with_a_clear_error() {
        let mut frozen = spec("").frozen();
        frozen["format"] = json!("bakerd-frozen-spec/99");
        let text = Spec::from_frozen(&frozen).unwrap_err().to_string();
        assert!(
            text.contains("bakerd-frozen-spec/99") && text.contains("bakerd apply"),
            "{text}"
        );
        let mut frozen = spec("").frozen();
        frozen["spec"]["instance"]["type"] = json!(7);
        let text = Spec::from_frozen(&frozen).unwrap_err().to_string();
        assert!(text.contains("instance.type"), "{text}");
    }
}
