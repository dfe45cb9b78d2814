//! After a build failed because of its spec and the user fixed the spec, `resume` does not
//! replay the old spec: it says what changed, and `resume --apply-changes` builds the fixed spec
//! as a new build after deleting what the failed one made — one image, nothing leaked.

mod common;

use common::SimProcess;
use std::path::{Path, PathBuf};
use std::process::Output;

fn write_spec(dir: &Path, command: &str) -> PathBuf {
    write_spec_with(dir, command, "")
}

/// The spec with `extra` top-level lines (e.g. `on_failure: keep`).
fn write_spec_with(dir: &Path, command: &str, extra: &str) -> PathBuf {
    let path = dir.join("app.yaml");
    let text = format!(
        "{extra}region: cn-hangzhou\nsource_image: {{ id: ubuntu1404_64_40G_cloudinit_20160427.raw }}\n\
         instance: {{ type: ecs.s2.large }}\nssh: {{ username: root, timeout: 2m }}\n\
         provisioners:\n  - shell: {{ inline: [\"{command}\"] }}\n\
         image:\n  name: \"fix-{{{{timestamp}}}}\"\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn bakerd(sim: &SimProcess, state: &Path, args: &[&str]) -> (Output, String) {
    common::bakerd_on_sim(sim, state, args)
}

fn build_ids(text: &str) -> Vec<String> {
    let mut ids: Vec<String> = text
        .match_indices("build b-")
        .map(|(at, _)| text[at + 6..at + 18].to_string())
        .collect();
    ids.dedup();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spec_fixed_after_a_failure_is_built_by_resume_apply_changes_leaving_one_image_and_nothing_else(
) {
    let sim = SimProcess::start("spec-fix");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let spec = write_spec(dir.path(), "exit 3");

    let (out, text) = bakerd(&sim, &state, &["apply", spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let failed = build_ids(&text)[0].clone();
    assert!(
        !text.contains(&format!("`bakerd resume {failed}` retries it")),
        "a failing script is not retryable: {text}"
    );
    assert!(
        text.contains(&format!("`bakerd resume {failed} --apply-changes`")),
        "{text}"
    );

    // The fix: resume names the edit instead of replaying the old command.
    write_spec(dir.path(), "echo fixed > /root/fixed");
    let (out, text) = bakerd(&sim, &state, &["resume", &failed]);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("changed since build")
            && text.contains(
                r#"provisioners[0].shell.inline[0]: "exit 3" → "echo fixed > /root/fixed""#
            )
            && text.contains("--apply-changes")
            && text.contains("--as-started"),
        "the edit is named, not ignored: {text}"
    );
    let (_, shown) = bakerd(&sim, &state, &["show", &failed]);
    assert!(
        shown.contains("failed"),
        "refusing changed nothing: {shown}"
    );

    let (out, text) = bakerd(&sim, &state, &["resume", &failed, "--apply-changes"]);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("build {failed} cancelled")),
        "{text}"
    );
    let new = build_ids(&text)
        .into_iter()
        .find(|id| *id != failed)
        .unwrap_or_else(|| panic!("a new build: {text}"));
    assert!(text.contains("succeeded: image "), "{text}");

    let inventory = sim.inventory().await;
    assert!(
        common::live_resources_of_build(&inventory, &failed).is_empty(),
        "the failed build left: {:?}",
        common::live_resources_of_build(&inventory, &failed)
    );
    let mut kinds: Vec<String> = common::live_resources_of_build(&inventory, &new)
        .iter()
        .map(|r| r.split(' ').next().unwrap().to_string())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["image", "snapshot"], "{inventory:?}");
    let (_, status) = bakerd(&sim, &state, &["apply", spec.to_str().unwrap()]);
    assert!(status.contains("up to date"), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn applying_a_fixed_spec_names_the_failed_build_that_still_holds_resources_and_how_to_delete_them(
) {
    let sim = SimProcess::start("spec-fix-leftovers");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let spec = write_spec_with(dir.path(), "exit 3", "on_failure: keep\n");
    let (out, text) = bakerd(&sim, &state, &["apply", spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let failed = build_ids(&text)[0].clone();

    write_spec_with(dir.path(), "true", "on_failure: keep\n");
    let (out, text) = bakerd(&sim, &state, &["apply", spec.to_str().unwrap()]);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "build {failed} of this spec failed earlier and still holds"
        )) && text.contains("instance=")
            && text.contains(&format!("`bakerd cancel {failed}` deletes them")),
        "{text}"
    );
    let (out, text) = bakerd(&sim, &state, &["cancel", &failed]);
    assert!(out.status.success(), "{text}");
    let inventory = sim.inventory().await;
    assert!(
        common::live_resources_of_build(&inventory, &failed).is_empty(),
        "{:?}",
        common::live_resources_of_build(&inventory, &failed)
    );
}
