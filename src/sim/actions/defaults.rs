//! Response fields real ECS returns that the simulator has no concept of (dedicated hosts, spot,
//! CPU topology, image detection, disk performance, ...), with the values ECS gives an ordinary
//! pay-as-you-go resource. They exist so that typed clients (the Tea SDKs' models, checked by
//! `tests/sim_node_sdk.rs`) find every field they declare, with its declared type.

use serde_json::{json, Value};

/// Adds every field of `extra` to the JSON object `base`.
pub fn merge(base: &mut Value, extra: Value) {
    if let (Value::Object(b), Value::Object(e)) = (base, extra) {
        b.extend(e);
    }
}

/// DescribeInstances: fields of one instance beyond what the simulator tracks.
pub fn instance_extras(cpus: i64) -> Value {
    json!({
        "AdditionalInfo": { "EnableHighDensityMode": false, "ManagedHostId": "", "NodeSerialNumber": "" },
        "ClockOptions": { "PtpStatus": "disabled" },
        "CpuOptions": { "CoreCount": (cpus / 2).max(1), "ThreadsPerCore": if cpus > 1 { 2 } else { 1 },
            "Numa": "", "TopologyType": "", "NestedVirtualization": "", "TurboMode": "", "EnableVISST": false, "EnableVRDT": false },
        "ClusterId": "", "CreditSpecification": "", "DeploymentSetGroupNo": 0, "DeploymentSetId": "",
        "DedicatedHostAttribute": { "DedicatedHostClusterId": "", "DedicatedHostId": "", "DedicatedHostName": "" },
        "DedicatedInstanceAttribute": { "Affinity": "", "Tenancy": "" },
        "EcsCapacityReservationAttr": { "CapacityReservationId": "", "CapacityReservationPreference": "" },
        "DeviceAvailable": true, "EnableNVS": false, "GPUAmount": 0, "GPUSpec": "", "HpcClusterId": "", "ISP": "",
        "HibernationOptions": { "Configured": false },
        "ImageOptions": { "CurrentOSNVMeSupported": false, "LoginAsNonRoot": false },
        "LocalStorageAmount": 0, "LocalStorageCapacity": 0,
        "PrivateDnsNameOptions": { "EnableInstanceIdDnsAAAARecord": false, "EnableInstanceIdDnsARecord": false,
            "EnableIpDnsARecord": false, "EnableIpDnsPtrRecord": false, "HostnameType": "Custom" },
        "RdmaIpAddress": { "IpAddress": [] }, "Recyclable": false, "SaleCycle": "",
        "SecurityOptions": { "EnableSecureBoot": false },
        "SpotDuration": 0, "SpotInterruptionBehavior": "Terminate", "SpotPriceLimit": 0.0, "SpotStrategy": "NoSpot",
        "VlanId": "",
    })
}

/// DescribeDisks: performance, billing and placement fields of one disk.
pub fn disk_extras(zone: &str) -> Value {
    json!({
        "AutoSnapshotPolicyId": "", "BdfId": "", "BurstingEnabled": false, "DataSource": { "Id": "", "Type": "" },
        "DetachedTime": "", "DiskChargeType": "PostPaid", "EnableAutomatedSnapshotPolicy": false,
        "IOPS": 0, "IOPSRead": 0, "IOPSWrite": 0, "KMSKeyId": "", "MountInstanceNum": 0,
        "MountInstances": { "MountInstance": [] }, "MultiAttach": "Disabled",
        "OperationLocks": { "OperationLock": [] }, "PerformanceLevel": "", "Placement": { "ZoneIds": zone },
        "ProductCode": "", "ProvisionedIops": 0, "SerialNumber": "", "SourceDiskId": "", "StorageClusterId": "",
        "StorageSetId": "", "StorageSetPartitionNumber": 0, "Throughput": 0, "ThroughputRead": 0, "ThroughputWrite": 0,
    })
}

/// DescribeSnapshots: copy, instant-access and encryption fields of one snapshot.
pub fn snapshot_extras(region: &str, size_gib: i64) -> Value {
    json!({
        "FullSnapshotSizeInBytes": size_gib * 1024 * 1024 * 1024, "InstantAccess": false,
        "InstantAccessRetentionDays": 0, "KMSKeyId": "", "SnapshotLinkId": "", "SnapshotSN": "",
        "SourceRegionId": region, "SourceSnapshotId": "", "SourceStorageType": "disk",
    })
}

/// DescribeImages: the image check results (none ran).
pub fn image_detection() -> Value {
    json!({ "Items": { "Item": [] }, "Status": "Finished" })
}

/// DescribeImages: online resize and metadata features of the image.
pub fn image_features() -> Value {
    json!({ "CpuOnlineDowngrade": "unsupported", "CpuOnlineUpgrade": "unsupported", "ImdsSupport": "v1",
        "MemoryOnlineDowngrade": "unsupported", "MemoryOnlineUpgrade": "unsupported", "NvmeSupport": "unsupported" })
}
