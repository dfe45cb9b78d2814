//! Desired state that follows the world: a spec whose source is an image family is up to date
//! only while its image was built on the family's newest image.

mod common;

use common::SimProcess;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

fn write(dir: &Path, name: &str, source: &str, image: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let text = format!(
        "region: cn-hangzhou\nsource_image: {source}\ninstance: {{ type: ecs.s2.large }}\n\
         ssh: {{ username: root, timeout: 2m }}\n\
         provisioners:\n  - shell: {{ inline: [\"echo {name} > /root/{name}\"] }}\n\
         image:\n{image}"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn bakerd(sim: &SimProcess, state: &Path, args: &[&str]) -> (Output, String) {
    common::bakerd_on_sim(sim, state, args)
}

/// `bakerd validate --remote <spec>` (it has no state dir).
fn validate_remote(sim: &SimProcess, spec: &Path) -> (Output, String) {
    let out = common::run_bakerd(
        &["validate", "--remote", spec.to_str().unwrap()],
        &[
            ("BAKERD_ECS_ENDPOINT", sim.endpoint.as_str()),
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", common::ACCESS_KEY_ID),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", common::ACCESS_KEY_SECRET),
        ],
    );
    let text = common::output_text(&out);
    (out, text)
}

/// Applies and returns (output, image id of the build's result).
fn apply(sim: &SimProcess, state: &Path, spec: &Path, extra: &[&str]) -> (String, String) {
    let mut args = vec!["apply", spec.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (out, text) = bakerd(sim, state, &args);
    assert!(out.status.success(), "apply failed:\n{text}");
    let image = ["succeeded: image ", "image "]
        .iter()
        .find_map(|marker| {
            let line = text.lines().find(|l| {
                l.contains(marker) && (marker.starts_with("succeeded") || l.contains("up to date"))
            })?;
            let rest = &line[line.find(marker)? + marker.len()..];
            rest.split_whitespace().next().map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no image id in:\n{text}"));
    (text, image)
}

#[test]
fn a_newer_image_in_the_source_family_makes_apply_rebuild_on_it_and_show_names_both_bases() {
    let sim = SimProcess::start("family-follow");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let base_image = "  name: \"base-{{timestamp}}\"\n  family: fam-base\n";
    let base = write(
        dir.path(),
        "base",
        "{ id: ubuntu1404_64_40G_cloudinit_20160427.raw }",
        base_image,
    );
    let app = write(
        dir.path(),
        "app",
        "{ family: fam-base }",
        "  name: \"app-{{timestamp}}\"\n",
    );
    let (_, first_base) = apply(&sim, &state, &base, &[]);
    let (_, first_app) = apply(&sim, &state, &app, &[]);
    let (text, same) = apply(&sim, &state, &app, &[]);
    assert!(text.contains("up to date"), "{text}");
    assert_eq!(same, first_app);

    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (_, second_base) = apply(&sim, &state, &base, &["--force"]);
    assert_ne!(second_base, first_base);
    let (out, checked) = validate_remote(&sim, &app);
    assert!(out.status.success(), "{checked}");
    assert!(
        checked.contains("out of date: source family fam-base now resolves to")
            && checked.contains(&second_base),
        "validate says why: {checked}"
    );
    let (text, second_app) = apply(&sim, &state, &app, &[]);
    assert!(
        text.contains("out of date") && text.contains(&format!("now resolves to {second_base}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("was built on {first_base}")),
        "{text}"
    );
    assert_ne!(second_app, first_app, "{text}");

    let start = text.find("build b-").expect("build id") + "build ".len();
    let id = &text[start..start + 12];
    let (out, shown) = bakerd(&sim, &state, &["show", id, "--json"]);
    assert!(out.status.success(), "{shown}");
    let show: Value = serde_json::from_str(shown.trim()).expect("show --json");
    assert_eq!(
        show["resources"]["source_image"],
        second_base.as_str(),
        "{show}"
    );
    assert_eq!(
        show["resources"]["replaces_source_image"],
        first_base.as_str(),
        "{show}"
    );
    assert_eq!(
        show["resources"]["replaces_image"],
        first_app.as_str(),
        "{show}"
    );
    let (text, _) = apply(&sim, &state, &app, &[]);
    assert!(text.contains("up to date"), "{text}");
    let (_, checked) = validate_remote(&sim, &app);
    assert!(
        checked.contains(&format!("up to date: image {second_app}")),
        "{checked}"
    );

    // An edited spec file makes its newest image out of date, offline, in `status`.
    let edited = std::fs::read_to_string(&app)
        .unwrap()
        .replace("echo app", "echo app2");
    std::fs::write(&app, edited).unwrap();
    let (_, listed) = bakerd(&sim, &state, &["status"]);
    assert!(
        listed.contains(r#"out of date: "#)
            && listed.contains(r#"provisioners[0].shell.inline[0]: "echo app > /root/app" → "echo app2 > /root/app""#),
        "status says why: {listed}"
    );
    assert_eq!(
        listed.matches("out of date").count(),
        1,
        "only the newest image of app: {listed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_region_added_to_copy_regions_copies_the_existing_image_without_rebuilding_it() {
    let sim = SimProcess::start("family-copy-only");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let source = "{ id: ubuntu1404_64_40G_cloudinit_20160427.raw }";
    let image = |regions: &str| {
        format!("  name: \"copy-{{{{timestamp}}}}\"\n  copy_regions: [{regions}]\n")
    };
    let spec = write(dir.path(), "app", source, &image("cn-shanghai"));
    let (_, built) = apply(&sim, &state, &spec, &[]);

    write(dir.path(), "app", source, &image("cn-shanghai, cn-beijing"));
    let (out, _) = validate_remote(&sim, &spec);
    assert!(out.status.success());
    let (text, distributed) = apply(&sim, &state, &spec, &[]);
    assert_eq!(distributed, built, "the same image, not a rebuild: {text}");
    assert!(
        text.contains("is not rebuilt: copy to cn-beijing; already copied to cn-shanghai"),
        "the plan comes first: {text}"
    );
    let calls = sim.calls().await;
    assert_eq!(calls["counts"]["RunInstances"], 1, "{calls}");
    assert_eq!(calls["counts"]["CopyImage"], 2, "{calls}");
    let inventory = sim.inventory().await;
    let live_images: Vec<&Value> = inventory
        .iter()
        .filter(|r| r["kind"] == "image" && r["deleted"].is_null())
        .filter(|r| r["tags"]["bakerd:managed"] == "true")
        .collect();
    let mut regions: Vec<&str> = live_images
        .iter()
        .map(|r| r["region"].as_str().unwrap_or("?"))
        .collect();
    regions.sort();
    assert_eq!(
        regions,
        ["cn-beijing", "cn-hangzhou", "cn-shanghai"],
        "{live_images:?}"
    );

    let (text, again) = apply(&sim, &state, &spec, &[]);
    assert!(text.contains("up to date"), "{text}");
    assert_eq!(again, built);
}
