//! Packer's `manifest` post-processor: after a successful build, a JSON file listing the build's
//! artifact, in Packer's layout, so scripts that read `packer-manifest.json` keep working.
//!
//! Layout (Packer's `post-processor/manifest`): `{"builds": [{"name", "builder_type",
//! "build_time", "files", "artifact_id", "packer_run_uuid", "custom_data"}], "last_run_uuid"}`;
//! an existing file is read and the new build appended, as Packer does. The alicloud-ecs artifact
//! id is `region:image-id`, comma-separated over the image and its copies.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A `post-processor "manifest"` of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRequest {
    /// Where to write: `output`, else `packer-manifest.json`; relative to the template's directory.
    pub output: PathBuf,
    /// The build's name in the manifest (the source's name).
    pub name: String,
    pub custom_data: Option<BTreeMap<String, String>>,
}

impl ManifestRequest {
    /// Reads the post-processor's options (`output`, `custom_data`; `strip_path` has no files to
    /// strip in an image build).
    pub fn from_config(config: &Map<String, Value>, name: &str, base_dir: &Path) -> Self {
        let output = config
            .get("output")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("packer-manifest.json");
        let custom_data = config
            .get("custom_data")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_string),
                        )
                    })
                    .collect()
            });
        ManifestRequest {
            output: base_dir.join(output),
            name: name.to_string(),
            custom_data,
        }
    }

    /// Appends this build (images by region) to the manifest file, written atomically.
    pub fn write(&self, images: &BTreeMap<String, String>, build_time: u64) -> std::io::Result<()> {
        let run_uuid = uuid::Uuid::new_v4().to_string();
        let mut manifest = std::fs::read_to_string(&self.output)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({"builds": []}));
        let artifact_id = images
            .iter()
            .map(|(region, image)| format!("{region}:{image}"))
            .collect::<Vec<_>>()
            .join(",");
        let build = json!({
            "name": self.name, "builder_type": "alicloud-ecs", "build_time": build_time,
            "files": null, "artifact_id": artifact_id, "packer_run_uuid": run_uuid,
            "custom_data": self.custom_data,
        });
        if let Some(builds) = manifest["builds"].as_array_mut() {
            builds.push(build);
        } else {
            manifest["builds"] = json!([build]);
        }
        manifest["last_run_uuid"] = json!(run_uuid);
        let tmp = self.output.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&manifest)? + "\n")?;
        std::fs::rename(&tmp, &self.output)
    }
}
