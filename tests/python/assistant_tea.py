"""Cloud Assistant against the simulator with the Tea SDK (alibabacloud_ecs20140526, V3 signatures):
RunCommand on a new instance, then DescribeInvocationResults until it ends; the output is base64.
Usage: assistant_tea.py <host:port> <region>. Prints one JSON line {instance, invoke_id, status,
exit_code, output} on success; exits non-zero on error."""
import base64
import json
import sys

from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client
from alibabacloud_tea_openapi import models as open_api_models
from sim_common import wait

ENDPOINT, REGION = sys.argv[1], sys.argv[2]
client = Client(open_api_models.Config(access_key_id="testid", access_key_secret="testsecret",
                                       endpoint=ENDPOINT, protocol="http", region_id=REGION))


# A security group with no rule at all: Cloud Assistant needs no inbound access.
sg = client.create_security_group(ecs.CreateSecurityGroupRequest(region_id=REGION, security_group_name="sdk-ca-sg")).body.security_group_id
instance = client.create_instance(ecs.CreateInstanceRequest(
    region_id=REGION, image_id="ubuntu_24_04_x64_20G_alibase_20251010.vhd", instance_type="ecs.s2.large",
    security_group_id=sg, client_token="sdk-ca-create")).body.instance_id


def status():
    body = client.describe_instances(ecs.DescribeInstancesRequest(region_id=REGION, instance_ids=json.dumps([instance]))).body
    return body.instances.instance[0].status


wait("Stopped", lambda: status() == "Stopped")
client.start_instance(ecs.StartInstanceRequest(instance_id=instance))
wait("Running", lambda: status() == "Running")


def agent_online():
    body = client.describe_cloud_assistant_status(ecs.DescribeCloudAssistantStatusRequest(region_id=REGION, instance_id=[instance])).body
    return body.instance_cloud_assistant_status_set.instance_cloud_assistant_status[0].cloud_assistant_status == "true"


wait("agent", agent_online)
run = client.run_command(ecs.RunCommandRequest(
    region_id=REGION, type="RunShellScript", command_content="echo sdk-hello; id -un; exit 4",
    instance_id=[instance], timeout=60, name="sdk-ca")).body


def finished():
    body = client.describe_invocation_results(ecs.DescribeInvocationResultsRequest(region_id=REGION, invoke_id=run.invoke_id)).body
    result = body.invocation.invocation_results.invocation_result[0]
    return result if result.invocation_status not in ("Pending", "Running") else None


result = wait("invocation", finished)
client.delete_instance(ecs.DeleteInstanceRequest(instance_id=instance, force=True))
print(json.dumps({"instance": instance, "invoke_id": run.invoke_id, "status": result.invocation_status,
                  "exit_code": result.exit_code, "output": base64.b64decode(result.output).decode()}))
