//! `GET /_sim/inventory`: every resource ever created, deleted ones too.

use serde_json::{json, Value};

use super::store::{iso_time, Meta, State};

fn entry(kind: &str, meta: &Meta, status: &str, extra: Value) -> Value {
    let mut v = json!({
        "id": meta.id,
        "kind": kind,
        "region": meta.region,
        "status": status,
        "tags": meta.tags,
        "client_token": meta.client_token,
        "created": iso_time(meta.created_ms),
        "created_ms": meta.created_ms,
        "deleted": meta.deleted_ms.map(iso_time),
        "deleted_ms": meta.deleted_ms,
    });
    if let (Value::Object(m), Value::Object(x)) = (&mut v, extra) {
        m.extend(x);
    }
    v
}

/// The inventory body: `{"resources":[{id, kind, region, status, tags, client_token, created, deleted, ..}]}`.
pub fn inventory(state: &State) -> Value {
    let mut out = Vec::new();
    for i in state.instances.values() {
        out.push(entry(
            "instance",
            &i.meta,
            &status_or_deleted(&i.meta, &i.status),
            json!({
                "private_ip": i.private_ip.to_string(),
                "public_ip": i.public_ip.map(|p| p.to_string()),
                "key_pair_name": i.key_pair_name,
                "image_id": i.image_id,
                "system_disk_id": i.system_disk_id,
                "security_group_ids": i.security_group_ids,
                "instance_type": i.instance_type,
                "name": i.name,
                "zone_id": i.zone,
                "vswitch_id": i.vswitch_id,
            }),
        ));
    }
    for d in state.disks.values() {
        out.push(entry(
            "disk",
            &d.meta,
            &status_or_deleted(&d.meta, &d.status),
            json!({
                "instance_id": d.instance_id, "image_id": d.image_id, "size_gib": d.size_gib,
                "type": if d.data.is_some() { "data" } else { "system" },
            }),
        ));
    }
    for s in state.snapshots.values() {
        out.push(entry(
            "snapshot",
            &s.meta,
            &status_or_deleted(&s.meta, &s.status),
            json!({"source_disk_id": s.source_disk_id, "name": s.name}),
        ));
    }
    for i in state.images.values() {
        let data_snapshots: Vec<&str> = i
            .data_disks
            .iter()
            .map(|d| d.snapshot_id.as_str())
            .collect();
        out.push(entry("image", &i.meta, &status_or_deleted(&i.meta, &i.status), json!({"name": i.name, "snapshot_id": i.snapshot_id, "data_snapshot_ids": data_snapshots, "copied_from": i.copied_from, "family": i.family})));
    }
    for k in state.key_pairs.values() {
        out.push(entry(
            "keypair",
            &k.meta,
            &status_or_deleted(&k.meta, "Available"),
            json!({"name": k.name, "fingerprint": k.fingerprint}),
        ));
    }
    for g in state.security_groups.values() {
        out.push(entry(
            "securitygroup",
            &g.meta,
            &status_or_deleted(&g.meta, "Available"),
            json!({"name": g.name, "vpc_id": g.vpc_id, "rules": g.rules.len()}),
        ));
    }
    for v in state.vpcs.values() {
        out.push(entry(
            "vpc",
            &v.meta,
            &status_or_deleted(&v.meta, &v.status),
            json!({"name": v.name, "cidr_block": v.cidr_block}),
        ));
    }
    for v in state.vswitches.values() {
        out.push(entry(
            "vswitch",
            &v.meta,
            &status_or_deleted(&v.meta, &v.status),
            json!({"name": v.name, "vpc_id": v.vpc_id, "zone_id": v.zone}),
        ));
    }
    for e in state.eips.values() {
        out.push(entry(
            "eip",
            &e.meta,
            &status_or_deleted(&e.meta, &e.status),
            json!({"ip": e.ip.to_string(), "instance_id": e.instance_id}),
        ));
    }
    json!({ "resources": out })
}

fn status_or_deleted(meta: &Meta, status: &str) -> String {
    if meta.live() {
        status.to_string()
    } else {
        "Deleted".to_string()
    }
}
