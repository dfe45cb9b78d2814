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
use std::sync::{Mutex, OnceLock};

/// One `packer_run_uuid` per bakerd process, as Packer has one per `packer build`: the builds of
/// one multi-source `apply` share it.
fn run_uuid() -> &'static str {
    static RUN: OnceLock<String> = OnceLock::new();
    RUN.get_or_init(|| uuid::Uuid::new_v4().to_string())
}

/// Serializes the read-append-rename of manifest files: the builds of one `apply` finish
/// concurrently and may name the same file.
static WRITING: Mutex<()> = Mutex::new(());

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
        let run_uuid = run_uuid();
        let _writing = WRITING
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(dir: &Path, name: &str) -> ManifestRequest {
        ManifestRequest {
            output: dir.join("packer-manifest.json"),
            name: name.to_string(),
            custom_data: None,
        }
    }

    /// The builds of one process share one run uuid, and concurrent writers lose no build.
    #[test]
    fn concurrent_builds_of_one_run_all_land_in_the_manifest_under_one_run_uuid() {
        let dir = tempfile::tempdir().unwrap();
        let start = std::sync::Arc::new(std::sync::Barrier::new(8));
        let writers: Vec<_> = (0..8)
            .map(|i| {
                let request = request(dir.path(), &format!("source-{i}"));
                let start = start.clone();
                std::thread::spawn(move || {
                    start.wait();
                    let images = BTreeMap::from([("cn-hangzhou".to_string(), format!("m-{i}"))]);
                    request.write(&images, 1_700_000_000 + i).unwrap();
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        let text = std::fs::read_to_string(dir.path().join("packer-manifest.json")).unwrap();
        let manifest: Value = serde_json::from_str(&text).unwrap();
        let builds = manifest["builds"].as_array().unwrap();
        assert_eq!(builds.len(), 8, "{manifest}");
        let uuids: std::collections::BTreeSet<_> = builds
            .iter()
            .map(|b| b["packer_run_uuid"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(uuids.len(), 1, "{manifest}");
        assert_eq!(manifest["last_run_uuid"], builds[0]["packer_run_uuid"]);
        let mut names: Vec<_> = builds.iter().map(|b| b["name"].as_str().unwrap()).collect();
        names.sort();
        assert_eq!(names.first(), Some(&"source-0"));
        assert_eq!(names.last(), Some(&"source-7"));
    }
}
