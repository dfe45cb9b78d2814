"""Full ECS lifecycle against the simulator with the Tea SDK (alibabacloud_ecs20140526, its default
V3 ACS3-HMAC-SHA256 signatures). Usage: lifecycle_tea.py <host:port> <region>.
Prints one JSON line {instance, snapshot, image, security_group} on success; exits non-zero on error."""
import json
import sys

from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client
from alibabacloud_tea_openapi import models as open_api_models
from Tea.exceptions import TeaException
from sim_common import wait

ENDPOINT, REGION = sys.argv[1], sys.argv[2]
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ sdk-test"
client = Client(open_api_models.Config(access_key_id="testid", access_key_secret="testsecret",
                                       endpoint=ENDPOINT, protocol="http", region_id=REGION))


client.import_key_pair(ecs.ImportKeyPairRequest(region_id=REGION, key_pair_name="sdk-tea-key", public_key_body=PUBLIC_KEY))
sg = client.create_security_group(ecs.CreateSecurityGroupRequest(region_id=REGION, security_group_name="sdk-tea-sg")).body.security_group_id
client.authorize_security_group(ecs.AuthorizeSecurityGroupRequest(
    region_id=REGION, security_group_id=sg,
    permissions=[ecs.AuthorizeSecurityGroupRequestPermissions(ip_protocol="tcp", port_range="22/22", source_cidr_ip="0.0.0.0/0")]))
instance = client.create_instance(ecs.CreateInstanceRequest(
    region_id=REGION, image_id="ubuntu_24_04_x64_20G_alibase_20251010.vhd", instance_type="ecs.s2.large",
    security_group_id=sg, key_pair_name="sdk-tea-key", client_token="sdk-tea-create")).body.instance_id


def instance_status():
    body = client.describe_instances(ecs.DescribeInstancesRequest(region_id=REGION, instance_ids=json.dumps([instance]))).body
    return body.instances.instance[0].status if body.instances.instance else None


wait("Stopped", lambda: instance_status() == "Stopped")
client.start_instance(ecs.StartInstanceRequest(instance_id=instance))
wait("Running", lambda: instance_status() == "Running")
disk = client.describe_disks(ecs.DescribeDisksRequest(region_id=REGION, instance_id=instance, disk_type="system")).body.disks.disk[0].disk_id
snapshot = client.create_snapshot(ecs.CreateSnapshotRequest(disk_id=disk, snapshot_name="sdk-tea-snap")).body.snapshot_id


def snapshot_status():
    body = client.describe_snapshots(ecs.DescribeSnapshotsRequest(region_id=REGION, snapshot_ids=json.dumps([snapshot]))).body
    return body.snapshots.snapshot[0].status


wait("accomplished", lambda: snapshot_status() == "accomplished")
image = client.create_image(ecs.CreateImageRequest(region_id=REGION, snapshot_id=snapshot, image_name="sdk-tea-image")).body.image_id


def image_status():
    body = client.describe_images(ecs.DescribeImagesRequest(region_id=REGION, image_id=image, status="Creating,Available,CreateFailed")).body
    return body.images.image[0].status


wait("Available", lambda: image_status() == "Available")
client.delete_instance(ecs.DeleteInstanceRequest(instance_id=instance, force=True))
client.delete_image(ecs.DeleteImageRequest(region_id=REGION, image_id=image))
client.delete_snapshot(ecs.DeleteSnapshotRequest(snapshot_id=snapshot))


def delete_group():
    """A deleted instance is released asynchronously; its group is refused (DependencyViolation) meanwhile."""
    try:
        client.delete_security_group(ecs.DeleteSecurityGroupRequest(region_id=REGION, security_group_id=sg))
        return True
    except TeaException as e:
        if e.code != "DependencyViolation":
            raise
        return False


wait("the security group deleted", delete_group)
client.delete_key_pairs(ecs.DeleteKeyPairsRequest(region_id=REGION, key_pair_names=json.dumps(["sdk-tea-key"])))
print(json.dumps({"instance": instance, "snapshot": snapshot, "image": image, "security_group": sg}))
