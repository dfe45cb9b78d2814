//! What changed in a build's spec file since the build started.
//!
//! Why: `resume` runs the spec frozen in the build record. After a failure caused by the spec
//! (a bad image id, a failing inline command) the user fixes the file; replaying the frozen spec
//! would fail the same way and silently ignore the fix. Comparing the file with the frozen spec
//! lets `resume` say what changed and offer the way that uses it.

use crate::reconciler::phase::Phase;
use crate::reconciler::state::BuildRecord;
use crate::spec::SpecSource;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// How the spec file of a build compares with the spec the build started with.
#[derive(Debug)]
pub enum SpecChange {
    /// Same spec hash: resuming runs what the file says.
    Unchanged,
    /// The file (or a file it references) differs; `path` is the spec file to build instead.
    Changed { path: PathBuf, changes: Vec<String> },
    /// The file is gone or does not load; the frozen spec is all there is.
    Unavailable { reason: String },
}

/// Compares the build's recorded spec file with the spec frozen in the record.
///
/// Caveats: `--var` values given to `apply` are not recorded, so a spec that takes variables
/// may read differently without them; the caller offers `--as-started` for that case.
pub fn compare(rec: &BuildRecord<Phase>) -> SpecChange {
    if rec.spec_path.is_empty() {
        return SpecChange::Unavailable {
            reason: "the build recorded no spec file".into(),
        };
    }
    let path = Path::new(&rec.spec_path);
    let current = match SpecSource::load_matching(path, &rec.spec_hash) {
        Ok(source) => source.spec,
        Err(e) => {
            return SpecChange::Unavailable {
                reason: format!("{} does not load ({e})", path.display()),
            }
        }
    };
    let hash = match current.hash() {
        Ok(hash) => hash,
        Err(e) => {
            return SpecChange::Unavailable {
                reason: format!("{} cannot be hashed ({e})", path.display()),
            }
        }
    };
    if hash == rec.spec_hash {
        return SpecChange::Unchanged;
    }
    let mut changes = Vec::new();
    diff("", &rec.spec, &current.frozen(), &mut changes);
    if changes.is_empty() {
        changes.push(
            "the contents of a file the provisioners run or upload (a script, a directory)".into(),
        );
    }
    SpecChange::Changed {
        path: path.to_path_buf(),
        changes,
    }
}

/// Longest value shown in a change line; longer ones are cut (inline scripts can be long).
const SHOWN_CHARS: usize = 60;

/// Appends one line per changed leaf (`source_image.id: "a" → "b"`), in field order.
fn diff(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                diff(
                    &child,
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), x, y, out);
            }
        }
        (a, b) if a != b => out.push(format!("{path}: {} → {}", shown(a), shown(b))),
        _ => {}
    }
}

fn shown(value: &Value) -> String {
    let text = match value {
        Value::Null => return "(unset)".into(),
        Value::Array(items) => return format!("a list of {}", items.len()),
        Value::Object(_) => return "a mapping".into(),
        other => other.to_string(),
    };
    if text.chars().count() <= SHOWN_CHARS {
        return text;
    }
    let cut: String = text.chars().take(SHOWN_CHARS).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changed_leaves_are_listed_with_their_paths_and_values() {
        let old = json!({"source_image": {"id": "bad"}, "provisioners": [{"shell": {"inline": ["echo a"]}}]});
        let new = json!({"source_image": {"id": "good"}, "provisioners": [{"shell": {"inline": ["echo b"]}}]});
        let mut out = Vec::new();
        diff("", &old, &new, &mut out);
        assert_eq!(
            out,
            vec![
                r#"provisioners[0].shell.inline[0]: "echo a" → "echo b""#,
                r#"source_image.id: "bad" → "good""#,
            ]
        );
    }

    #[test]
    fn added_removed_and_resized_fields_are_named_without_dumping_them() {
        let old = json!({"image": {"copy_regions": ["a"]}});
        let new = json!({"image": {"copy_regions": ["a", "b"], "force": true}});
        let mut out = Vec::new();
        diff("", &old, &new, &mut out);
        assert_eq!(
            out,
            vec![
                "image.copy_regions: a list of 1 → a list of 2",
                "image.force: (unset) → true",
            ]
        );
    }
}
