//! The simulator's data disks: `DataDisk.N` on RunInstances, snapshots of data disks, CreateImage
//! with `DiskDeviceMapping.N`, and instances from such an image getting the data disks' contents.

mod common;

use common::SimProcess;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

const REGION: &str = "cn-hangzhou";

async fn ok(sim: &SimProcess, action: &str, params: &[(&str, &str)]) -> Value {
    let (status, body) = sim.call(action, params).await;
    assert_eq!(status, 200, "{action}: {body}");
    body
}

async fn disks_of(sim: &SimProcess, instance: &str) -> Vec<Value> {
    let body = ok(
        sim,
        "DescribeDisks",
        &[("RegionId", REGION), ("InstanceId", instance)],
    )
    .await;
    body["Disks"]["Disk"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn data_disk(disks: &[Value]) -> Value {
    let data: Vec<&Value> = disks.iter().filter(|d| d["Type"] == "data").collect();
    assert_eq!(data.len(), 1, "{disks:?}");
    data[0].clone()
}

fn rootfs(sim: &SimProcess, disk: &Value) -> PathBuf {
    sim.data_dir
        .join("disks")
        .join(disk["DiskId"].as_str().unwrap())
        .join("rootfs")
}

async fn run_instance(sim: &SimProcess, image: &str, sg: &str, extra: &[(&str, &str)]) -> String {
    let mut params = vec![
        ("RegionId", REGION),
        ("ImageId", image),
        ("InstanceType", "ecs.s2.large"),
        ("SecurityGroupId", sg),
    ];
    params.extend_from_slice(extra);
    let body = ok(sim, "RunInstances", &params).await;
    let id = body["InstanceIdSets"]["InstanceIdSet"][0]
        .as_str()
        .unwrap()
        .to_string();
    let ids = format!("[\"{id}\"]");
    sim.wait_for("instance Running", Duration::from_secs(30), || async {
        let body = ok(
            sim,
            "DescribeInstances",
            &[("RegionId", REGION), ("InstanceIds", &ids)],
        )
        .await;
        (body["Instances"]["Instance"][0]["Status"] == "Running").then_some(())
    })
    .await;
    id
}

async fn snapshot(sim: &SimProcess, disk: &str) -> String {
    let body = ok(
        sim,
        "CreateSnapshot",
        &[("RegionId", REGION), ("DiskId", disk)],
    )
    .await;
    let id = body["SnapshotId"].as_str().unwrap().to_string();
    let ids = format!("[\"{id}\"]");
    sim.wait_for("snapshot accomplished", Duration::from_secs(30), || async {
        let body = ok(
            sim,
            "DescribeSnapshots",
            &[("RegionId", REGION), ("SnapshotIds", &ids)],
        )
        .await;
        (body["Snapshots"]["Snapshot"][0]["Status"] == "accomplished").then_some(())
    })
    .await;
    id
}

#[tokio::test]
async fn a_data_disk_snapshot_in_an_image_gives_new_instances_the_data_disk_with_its_files() {
    let sim = SimProcess::start("data-disks");
    let sg = common::ssh_security_group(&sim, REGION).await;
    let source = "ubuntu_22_04_x64_20G_alibase_20240926.vhd";
    let first = run_instance(
        &sim,
        source,
        &sg,
        &[
            ("DataDisk.1.Size", "40"),
            ("DataDisk.1.Category", "cloud_essd"),
            ("DataDisk.1.DiskName", "data1"),
            ("DataDisk.1.DeleteWithInstance", "false"),
        ],
    )
    .await;
    let disks = disks_of(&sim, &first).await;
    assert_eq!(disks.len(), 2, "{disks:?}");
    let data = data_disk(&disks);
    assert_eq!(data["Device"], "/dev/vdb");
    assert_eq!(data["Size"], 40);
    assert_eq!(data["DiskName"], "data1");
    let system = disks.iter().find(|d| d["Type"] == "system").unwrap();
    std::fs::write(rootfs(&sim, &data).join("hello.txt"), "on the data disk\n").unwrap();

    let system_snapshot = snapshot(&sim, system["DiskId"].as_str().unwrap()).await;
    let data_snapshot = snapshot(&sim, data["DiskId"].as_str().unwrap()).await;
    let body = ok(
        &sim,
        "DescribeSnapshots",
        &[
            ("RegionId", REGION),
            ("SnapshotIds", &format!("[\"{data_snapshot}\"]")),
        ],
    )
    .await;
    assert_eq!(body["Snapshots"]["Snapshot"][0]["SourceDiskType"], "data");
    let body = ok(
        &sim,
        "CreateImage",
        &[
            ("RegionId", REGION),
            ("ImageName", "with-data"),
            ("DiskDeviceMapping.1.SnapshotId", &system_snapshot),
            ("DiskDeviceMapping.2.SnapshotId", &data_snapshot),
            ("DiskDeviceMapping.2.Device", "/dev/vdb"),
        ],
    )
    .await;
    let image = body["ImageId"].as_str().unwrap().to_string();
    let ids = image.clone();
    let mappings = sim
        .wait_for("image Available", Duration::from_secs(30), || async {
            let body = ok(
                &sim,
                "DescribeImages",
                &[
                    ("RegionId", REGION),
                    ("ImageId", &ids),
                    ("Status", "Creating,Available"),
                ],
            )
            .await;
            let image = &body["Images"]["Image"][0];
            (image["Status"] == "Available")
                .then(|| image["DiskDeviceMappings"]["DiskDeviceMapping"].clone())
        })
        .await;
    let kinds: Vec<&str> = mappings
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["system", "data"], "{mappings}");

    let second = run_instance(&sim, &image, &sg, &[]).await;
    let copied = data_disk(&disks_of(&sim, &second).await);
    assert_eq!(copied["SourceSnapshotId"], data_snapshot.as_str());
    assert_eq!(copied["Device"], "/dev/vdb");
    let text = std::fs::read_to_string(rootfs(&sim, &copied).join("hello.txt")).unwrap();
    assert_eq!(text, "on the data disk\n");

    for instance in [&first, &second] {
        ok(
            &sim,
            "DeleteInstance",
            &[
                ("RegionId", REGION),
                ("InstanceId", instance),
                ("Force", "true"),
            ],
        )
        .await;
    }
    let kept = ok(
        &sim,
        "DescribeDisks",
        &[
            ("RegionId", REGION),
            (
                "DiskIds",
                &format!("[\"{}\"]", data["DiskId"].as_str().unwrap()),
            ),
        ],
    )
    .await;
    assert_eq!(
        kept["Disks"]["Disk"][0]["Status"], "Available",
        "DeleteWithInstance=false keeps it"
    );
    assert!(
        disks_of(&sim, &second).await.is_empty(),
        "data disks go with their instance by default"
    );
    let (status, body) = sim
        .call(
            "DeleteSnapshot",
            &[("RegionId", REGION), ("SnapshotId", &data_snapshot)],
        )
        .await;
    assert_eq!(
        status, 403,
        "an image's data snapshot cannot be deleted: {body}"
    );
}

#[tokio::test]
async fn bad_data_disk_parameters_are_refused_naming_them() {
    let sim = SimProcess::start("data-disks-bad");
    let sg = common::ssh_security_group(&sim, REGION).await;
    let source = "ubuntu_22_04_x64_20G_alibase_20240926.vhd";
    for (params, named) in [
        (vec![("DataDisk.1.Size", "5")], "DataDisk.1.Size"),
        (
            vec![("DataDisk.1.Category", "cloud_essd")],
            "DataDisk.1.Size",
        ),
        (vec![("DataDisk.1.SnapshotId", "s-missing")], "s-missing"),
        (vec![("InternetChargeType", "Free")], "InternetChargeType"),
    ] {
        let mut all = vec![
            ("RegionId", REGION),
            ("ImageId", source),
            ("InstanceType", "ecs.s2.large"),
            ("SecurityGroupId", sg.as_str()),
        ];
        all.extend(params);
        let (status, body) = sim.call("RunInstances", &all).await;
        assert!((400..500).contains(&status), "{body}");
        assert!(body.to_string().contains(named), "{named}: {body}");
    }
}
