"""Full ECS lifecycle against the simulator with the classic SDK (aliyun-python-sdk-core +
aliyun-python-sdk-ecs, V1 HMAC-SHA1 signatures). Usage: lifecycle_v1.py <host:port> <region>.
Prints one JSON line {instance, snapshot, image, security_group} on success; exits non-zero on error."""
import json
import sys

from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkecs.request.v20140526 import (
    AuthorizeSecurityGroupRequest, CreateImageRequest, CreateInstanceRequest, CreateSecurityGroupRequest,
    CreateSnapshotRequest, DeleteImageRequest, DeleteInstanceRequest, DeleteKeyPairsRequest,
    DeleteSecurityGroupRequest, DeleteSnapshotRequest, DescribeDisksRequest, DescribeImagesRequest,
    DescribeInstancesRequest, DescribeSnapshotsRequest, ImportKeyPairRequest, StartInstanceRequest,
)
from sim_common import wait

ENDPOINT, REGION = sys.argv[1], sys.argv[2]
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ sdk-test"
client = AcsClient("testid", "testsecret", REGION)


def call(module, **params):
    req = getattr(module, module.__name__.rsplit(".", 1)[1])()
    req.set_endpoint(ENDPOINT)
    for name, value in params.items():
        getattr(req, "set_" + name)(value)
    return json.loads(client.do_action_with_exception(req))


call(ImportKeyPairRequest, KeyPairName="sdk-v1-key", PublicKeyBody=PUBLIC_KEY)
sg = call(CreateSecurityGroupRequest, SecurityGroupName="sdk-v1-sg")["SecurityGroupId"]
call(AuthorizeSecurityGroupRequest, SecurityGroupId=sg, IpProtocol="tcp", PortRange="22/22", SourceCidrIp="0.0.0.0/0")
instance = call(CreateInstanceRequest, ImageId="ubuntu_24_04_x64_20G_alibase_20251010.vhd",
                InstanceType="ecs.s2.large", SecurityGroupId=sg, KeyPairName="sdk-v1-key",
                ClientToken="sdk-v1-create")["InstanceId"]


def instance_status():
    found = call(DescribeInstancesRequest, InstanceIds=json.dumps([instance]))["Instances"]["Instance"]
    return found[0]["Status"] if found else None


wait("Stopped", lambda: instance_status() == "Stopped")
call(StartInstanceRequest, InstanceId=instance)
wait("Running", lambda: instance_status() == "Running")
disk = call(DescribeDisksRequest, InstanceId=instance, DiskType="system")["Disks"]["Disk"][0]["DiskId"]
snapshot = call(CreateSnapshotRequest, DiskId=disk, SnapshotName="sdk-v1-snap")["SnapshotId"]
wait("accomplished", lambda: call(DescribeSnapshotsRequest, SnapshotIds=json.dumps([snapshot]))
     ["Snapshots"]["Snapshot"][0]["Status"] == "accomplished")
image = call(CreateImageRequest, SnapshotId=snapshot, ImageName="sdk-v1-image")["ImageId"]
wait("Available", lambda: call(DescribeImagesRequest, ImageId=image, Status="Creating,Available,CreateFailed")
     ["Images"]["Image"][0]["Status"] == "Available")
call(DeleteInstanceRequest, InstanceId=instance, Force=True)
call(DeleteImageRequest, ImageId=image)
call(DeleteSnapshotRequest, SnapshotId=snapshot)


def delete_group():
    """A deleted instance is released asynchronously; its group is refused (DependencyViolation) meanwhile."""
    try:
        call(DeleteSecurityGroupRequest, SecurityGroupId=sg)
        return True
    except ServerException as e:
        if e.get_error_code() != "DependencyViolation":
            raise
        return False


wait("the security group deleted", delete_group)
call(DeleteKeyPairsRequest, KeyPairNames=json.dumps(["sdk-v1-key"]))
print(json.dumps({"instance": instance, "snapshot": snapshot, "image": image, "security_group": sg}))
