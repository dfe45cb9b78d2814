//! Every hint points to something that exists: the commands, flags and spec fields that
//! bakerd's messages tell users to run or set are collected from the source and checked against
//! the real binary (`bakerd <command> --help`) and the real spec parser (`bakerd validate`).

mod common;

use serde_yaml::{Mapping, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A valid spec that candidate fields are added to.
const BASE_SPEC: &str =
    "region: cn-hangzhou\nsource_image: { id: ubuntu1404_64_40G_cloudinit_20160427.raw }\n\
     instance: { type: ecs.s2.large }\nprovisioners:\n  - shell: { inline: [\"true\"] }\n\
     image:\n  name: \"hints-{{timestamp}}\"\n";

/// Product sources whose messages reach users (the simulator's are the cloud's, not bakerd's).
fn source_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() && !path.ends_with("sim") {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The `backticked` fragments of the code (not comments), with Rust's `\`-newline string
/// continuations joined so a fragment split over two source lines is read whole.
fn backticked_fragments() -> Vec<String> {
    let mut fragments = Vec::new();
    for file in source_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut joined = String::new();
        let mut continued = false;
        for line in text.lines() {
            // A continued string's next line starts with indentation that is not part of it.
            let line = if continued { line.trim_start() } else { line };
            if !continued && line.trim_start().starts_with("//") {
                continue;
            }
            match line.strip_suffix('\\') {
                Some(cut) => joined.push_str(cut),
                None => {
                    joined.push_str(line);
                    joined.push('\n');
                }
            }
            continued = line.ends_with('\\');
        }
        for line in joined.lines() {
            let parts: Vec<&str> = line.split('`').collect();
            fragments.extend(parts.iter().skip(1).step_by(2).map(|s| s.to_string()));
        }
    }
    fragments
}

/// `bakerd resume {id} --apply-changes` → ("resume", ["--apply-changes"]).
fn commands(fragments: &[String]) -> BTreeSet<(String, Vec<String>)> {
    fragments
        .iter()
        .filter_map(|f| f.strip_prefix("bakerd "))
        .map(|rest| {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let flags = words
                .iter()
                .filter(|w| w.starts_with("--"))
                .map(|w| w.split('=').next().unwrap().to_string())
                .collect();
            (words[0].to_string(), flags)
        })
        .collect()
}

/// Dotted spec paths (`image.force`, `instance.data_disks[].snapshot_id`) named in messages,
/// also as `field: value` (`image.force: true`).
fn field_paths(fragments: &[String]) -> BTreeSet<String> {
    let roots = [
        "region.",
        "endpoint.",
        "credentials.",
        "source_image.",
        "instance.",
        "ssh.",
        "provisioners.",
        "image.",
        "timeouts.",
        "verify.",
    ];
    fragments
        .iter()
        .map(|f| f.split(':').next().unwrap_or_default().trim().to_string())
        .filter(|f| roots.iter().any(|r| f.starts_with(r)))
        .filter(|f| {
            f.chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.' || c == '[' || c == ']')
        })
        .collect()
}

/// Sets `path` (segments, `name[]` for a list of mappings) to a placeholder in `spec`.
fn set_path(spec: &mut Mapping, path: &str) {
    let (head, rest) = path.split_once('.').unwrap_or((path, ""));
    let (name, is_list) = match head.strip_suffix("[]") {
        Some(name) => (name, true),
        None => (head, false),
    };
    let key = Value::String(name.into());
    if rest.is_empty() {
        spec.insert(key, Value::String("placeholder".into()));
        return;
    }
    let mut child = match spec.get(&key) {
        Some(Value::Mapping(m)) if !is_list => m.clone(),
        _ => Mapping::new(),
    };
    set_path(&mut child, rest);
    let value = if is_list {
        Value::Sequence(vec![Value::Mapping(child)])
    } else {
        Value::Mapping(child)
    };
    spec.insert(key, value);
}

/// Whether `bakerd validate` accepts `path` as a field (a wrong value is fine; an unknown
/// field is not).
fn is_spec_field(dir: &Path, path: &str) -> (bool, String) {
    let mut spec: Mapping = serde_yaml::from_str(BASE_SPEC).unwrap();
    set_path(&mut spec, path);
    let file = dir.join("candidate.yaml");
    std::fs::write(&file, serde_yaml::to_string(&spec).unwrap()).unwrap();
    let out = common::run_bakerd(&["validate", file.to_str().unwrap()], &[]);
    let text = common::output_text(&out);
    (!text.contains("unknown field"), text)
}

#[test]
fn every_command_and_flag_a_message_recommends_exists() {
    // The checker itself can fail: the command an old hint named does not exist.
    let out = common::run_bakerd(&["regions", "--help"], &[]);
    assert!(!out.status.success(), "`bakerd regions` should not exist");
    let fragments = backticked_fragments();
    let commands = commands(&fragments);
    for needed in ["resume", "cancel", "apply", "validate"] {
        assert!(
            commands.iter().any(|(c, _)| c == needed),
            "the walker should find `bakerd {needed}` hints: {commands:?}"
        );
    }
    let mut missing = Vec::new();
    for (command, flags) in &commands {
        let out = common::run_bakerd(&[command, "--help"], &[]);
        let help = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() {
            missing.push(format!("`bakerd {command}` is not a command"));
            continue;
        }
        for flag in flags {
            if !help.contains(&format!("{flag} ")) && !help.contains(&format!("{flag}\n")) {
                missing.push(format!("`bakerd {command}` has no {flag}"));
            }
        }
    }
    eprintln!("checked {} command hints", commands.len());
    assert!(
        missing.is_empty(),
        "hints name what does not exist: {missing:#?}"
    );
}

#[test]
fn every_spec_field_a_message_names_is_a_field_of_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    // The checker itself can fail: a misspelt field is reported.
    for bogus in [
        "image.forse",
        "source_image.ids",
        "instance.data_disks[].snapshot",
    ] {
        let (ok, text) = is_spec_field(dir.path(), bogus);
        assert!(!ok, "{bogus} should be unknown: {text}");
    }
    let fields = field_paths(&backticked_fragments());
    for needed in ["image.force", "credentials.profile", "source_image.id"] {
        assert!(
            fields.contains(needed),
            "walker missed {needed}: {fields:?}"
        );
    }
    let missing: Vec<String> = fields
        .iter()
        .filter_map(|f| {
            let (ok, text) = is_spec_field(dir.path(), f);
            (!ok).then(|| format!("{f}: {text}"))
        })
        .collect();
    eprintln!("checked {} spec field hints", fields.len());
    assert!(
        missing.is_empty(),
        "hints name fields the spec refuses: {missing:#?}"
    );
}
