//! Provenance: what every image says about how it was made. The same facts go on the image as
//! tags (at creation, so an image never exists without them), into the build record (for `show`
//! and the `succeeded` manifest event) and onto the image's copies.
//!
//! `bakerd:verified` starts as `pending` when the spec has `verify` checks (`skipped` otherwise)
//! and becomes `true` or `false` once the checks ran; `apply` never takes a `false` image as up to
//! date.

use super::reconcile::{BuildError, Reconciler};
use super::state::BuildRecord;
use serde_json::{json, Value};

/// The bakerd version that built the image.
pub const VERSION_TAG: &str = "bakerd:version";
/// The build that made the image (also on every other resource of the build).
pub const BUILD_ID_TAG: &str = "bakerd:build-id";
/// The spec hash; `apply` finds up-to-date images by it.
pub const SPEC_HASH_TAG: &str = "bakerd:spec-hash";
/// The spec's content hash (its hash without `copy_regions`/`share_accounts`): a spec that only
/// changes where the image goes finds the image by it and copies or shares instead of rebuilding.
pub const CONTENT_HASH_TAG: &str = "bakerd:content-hash";
/// The source image id the build resolved (a family pins to one id).
pub const SOURCE_IMAGE_TAG: &str = "bakerd:source-image";
/// `true`, `false`, `pending` (checks not run yet) or `skipped` (the spec has none).
pub const VERIFIED_TAG: &str = "bakerd:verified";

/// Key of the provenance object in a build record's results.
const RECORD_KEY: &str = "provenance";

impl Reconciler {
    /// The provenance tags of the build's image, with `verified` as given.
    pub fn provenance_tags(&self, verified: &str) -> Vec<(String, String)> {
        vec![
            (VERSION_TAG.into(), self.provenance_version()),
            (BUILD_ID_TAG.into(), self.rec.id.to_string()),
            (SPEC_HASH_TAG.into(), self.rec.spec_hash.clone()),
            (
                CONTENT_HASH_TAG.into(),
                self.spec
                    .content_hash()
                    .unwrap_or_else(|_| "unknown".into()),
            ),
            (
                SOURCE_IMAGE_TAG.into(),
                self.resource("source_image").unwrap_or("unknown").into(),
            ),
            (VERIFIED_TAG.into(), verified.into()),
        ]
    }

    /// The `verified` value an image starts with.
    pub fn initial_verified(&self) -> &'static str {
        if self.spec.verify.is_some() {
            "pending"
        } else {
            "skipped"
        }
    }

    /// The version recorded when the image was first tagged (a resume by a newer binary keeps
    /// the version that started the image), else this binary's.
    fn provenance_version(&self) -> String {
        self.rec
            .results
            .get(RECORD_KEY)
            .and_then(|p| p.get("bakerd_version"))
            .and_then(Value::as_str)
            .unwrap_or(env!("CARGO_PKG_VERSION"))
            .to_string()
    }

    /// Writes the provenance (durable on return), before the tags that carry it go out.
    pub fn record_provenance(&mut self, verified: &str) -> Result<(), BuildError> {
        let value = json!({
            "bakerd_version": self.provenance_version(),
            "build_id": self.rec.id.as_str(),
            "spec_hash": self.rec.spec_hash,
            "source_image": self.resource("source_image"),
            "verified": verified,
        });
        if self.rec.results.get(RECORD_KEY) != Some(&value) {
            self.rec.results.insert(RECORD_KEY.into(), value);
            self.save()?;
        }
        Ok(())
    }

    /// The `verified` value recorded so far.
    pub fn recorded_verified(&self) -> String {
        provenance_field(&self.rec, "verified").unwrap_or_else(|| self.initial_verified().into())
    }
}

fn provenance_field<P>(rec: &BuildRecord<P>, field: &str) -> Option<String> {
    rec.results
        .get(RECORD_KEY)
        .and_then(|p| p.get(field))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The provenance of a build's image as `show` and the manifest print it (`null` before the
/// image is created).
pub fn of_record<P>(rec: &BuildRecord<P>) -> Value {
    match rec.results.get(RECORD_KEY) {
        Some(p) => {
            let mut p = p.clone();
            if let Some(map) = p.as_object_mut() {
                map.insert("image_id".into(), json!(rec.resources.get("image")));
            }
            p
        }
        None => Value::Null,
    }
}
