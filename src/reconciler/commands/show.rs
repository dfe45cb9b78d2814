//! `bakerd show`: one build's phase, resources and events.

use super::{exit, open_view, parse_id, spec_path, BuildArgs, CmdResult, OrExit};
use crate::reconciler::phase::Phase;
use serde_json::json;

/// `bakerd show <id>`: phase, resources, events with durations.
pub fn show(args: BuildArgs) -> CmdResult {
    let id = parse_id(&args.id)?;
    let view = open_view(&args.common, "show")?;
    let rec = view
        .load(&args.common.state_dir, &id)
        .or_exit(exit::STATE)?;
    let events = view.events(&id).or_exit(exit::STATE)?;
    let activity = view.activity(&rec);
    if args.common.json {
        let value = json!({"build": rec.id.as_str(), "phase": rec.phase, "activity": activity.label(), "resources": rec.resources, "spec_hash": rec.spec_hash, "provenance": crate::reconciler::provenance::of_record(&rec), "credentials": rec.credentials, "created_at": rec.created_at.to_string(), "updated_at": rec.updated_at.to_string(), "events": events});
        println!("{value}");
        return Ok(exit::OK);
    }
    if let Some(note) = view.source_note() {
        println!("{note}");
    }
    let phase = match activity.label() {
        "" => rec.phase.name().to_string(),
        label => format!("{} ({label})", rec.phase.name()),
    };
    println!(
        "build     {}\nspec      {}\nphase     {phase}",
        rec.id,
        spec_path(&rec),
    );
    if let Phase::Failed { at, error } = &rec.phase {
        println!("failed at {}: {error}", at.step_description());
    }
    if let Some(c) = &rec.credentials {
        let key = c
            .access_key_id
            .as_deref()
            .map(|k| format!(" (AccessKeyId {k})"));
        println!("credentials {}{}", c.source, key.unwrap_or_default());
    }
    println!(
        "created   {}\nupdated   {}\nresources:",
        rec.created_at, rec.updated_at
    );
    for (role, id) in &rec.resources {
        println!("  {role:<20} {id}");
    }
    if let Some(p) = crate::reconciler::provenance::of_record(&rec).as_object() {
        println!("provenance:");
        for (field, value) in p {
            let text = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_string);
            println!("  {field:<20} {text}");
        }
    }
    println!("events:");
    let mut previous = rec.created_at;
    for e in &events {
        let secs = e.at.millis_since(previous) as f64 / 1000.0;
        println!("  {}  +{secs:>6.1}s  {:<11} {}", e.at, e.kind, e.message);
        previous = e.at;
    }
    Ok(exit::OK)
}
