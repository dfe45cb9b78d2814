"""Quotas through the Tea SDK (alibabacloud_ecs20140526): DescribeAccountAttributes parsed by the
SDK's own models, and the refusals past the quotas. Expects a simulator started with
--quota max-postpaid-instance-vcpu-count=2 --quota max-security-groups=1.
Usage: quotas_tea.py <host:port> <region>. Prints one JSON line; exits non-zero on error."""
import json
import sys

from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client
from alibabacloud_tea_openapi import models as open_api_models
from Tea.exceptions import TeaException

ENDPOINT, REGION = sys.argv[1], sys.argv[2]
client = Client(open_api_models.Config(access_key_id="testid", access_key_secret="testsecret",
                                       endpoint=ENDPOINT, protocol="http", region_id=REGION))
NAMES = ["max-postpaid-instance-vcpu-count", "used-postpaid-instance-vcpu-count", "max-security-groups",
         "used-postpaid-yundisk-capacity"]


def attributes():
    body = client.describe_account_attributes(ecs.DescribeAccountAttributesRequest(
        region_id=REGION, attribute_name=NAMES)).body
    return {item.attribute_name: [{"value": v.value, "disk_category": v.disk_category,
                                   "charge": v.instance_charge_type}
                                  for v in item.attribute_values.value_item]
            for item in body.account_attribute_items.account_attribute_item}


def refusal(call):
    try:
        call()
    except TeaException as e:
        return {"code": e.code, "status": e.statusCode}
    return None


before = attributes()
sg = client.create_security_group(ecs.CreateSecurityGroupRequest(region_id=REGION, security_group_name="q1")).body.security_group_id
second_sg = refusal(lambda: client.create_security_group(ecs.CreateSecurityGroupRequest(region_id=REGION, security_group_name="q2")))


def create_instance(token):
    return client.create_instance(ecs.CreateInstanceRequest(
        region_id=REGION, image_id="ubuntu_24_04_x64_20G_alibase_20251010.vhd", instance_type="ecs.s2.large",
        security_group_id=sg, client_token=token)).body.instance_id


instance = create_instance("quota-first")
second_instance = refusal(lambda: create_instance("quota-second"))
after = attributes()
print(json.dumps({"before": before, "after": after, "second_security_group": second_sg,
                  "second_instance": second_instance, "instance": instance}))
