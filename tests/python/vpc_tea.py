"""The VPC API (2016-04-28) against the simulator with the official Tea SDK (alibabacloud_vpc20160428,
V3 signatures): a VPC, a vSwitch and an EIP created with tags, found by ListTagResources, retagged,
untagged, and deleted. Usage: vpc_tea.py <host:port> <region>.
Prints one JSON line {vpc, vswitch, eip, listed} on success; exits non-zero on error."""
import json
import sys

from alibabacloud_tea_openapi import utils_models as open_api_models
from alibabacloud_vpc20160428 import models as vpc
from alibabacloud_vpc20160428.client import Client
from sim_common import wait

ENDPOINT, REGION = sys.argv[1], sys.argv[2]
client = Client(open_api_models.Config(access_key_id="testid", access_key_secret="testsecret",
                                       endpoint=ENDPOINT, protocol="http", region_id=REGION))
KEY, VALUE = "bakerd:managed", "true"


def tagged(resource_type):
    """Ids of `resource_type` carrying the managed tag, as ListTagResources answers."""
    body = client.list_tag_resources(vpc.ListTagResourcesRequest(
        region_id=REGION, resource_type=resource_type,
        tag=[vpc.ListTagResourcesRequestTag(key=KEY, value=VALUE)])).body
    rows = body.tag_resources.tag_resource if body.tag_resources else []
    assert all(r.resource_type == resource_type for r in rows), [r.to_map() for r in rows]
    return sorted({r.resource_id for r in rows})


vpc_id = client.create_vpc(vpc.CreateVpcRequest(
    region_id=REGION, cidr_block="172.16.0.0/12", vpc_name="sdk-vpc", client_token="sdk-vpc-1",
    tag=[vpc.CreateVpcRequestTag(key=KEY, value=VALUE)])).body.vpc_id


def vpc_status():
    found = client.describe_vpcs(vpc.DescribeVpcsRequest(region_id=REGION, vpc_id=vpc_id)).body.vpcs.vpc
    return found[0].status if found else None


wait("VPC Available", lambda: vpc_status() == "Available")
listed_vpc = client.describe_vpcs(vpc.DescribeVpcsRequest(region_id=REGION, vpc_id=vpc_id)).body.vpcs.vpc[0]
assert [(t.key, t.value) for t in listed_vpc.tags.tag] == [(KEY, VALUE)], listed_vpc.to_map()

vsw_id = client.create_vswitch(vpc.CreateVSwitchRequest(
    region_id=REGION, vpc_id=vpc_id, zone_id=REGION + "-h", cidr_block="172.16.1.0/24",
    v_switch_name="sdk-vsw", tag=[vpc.CreateVSwitchRequestTag(key=KEY, value=VALUE)])).body.v_switch_id


def vswitch_status():
    found = client.describe_vswitches(vpc.DescribeVSwitchesRequest(
        region_id=REGION, v_switch_id=vsw_id)).body.v_switches.v_switch
    return found[0].status if found else None


wait("vSwitch Available", lambda: vswitch_status() == "Available")

eip = client.allocate_eip_address(vpc.AllocateEipAddressRequest(
    region_id=REGION, bandwidth="5", name="sdk-eip", client_token="sdk-eip-1",
    tag=[vpc.AllocateEipAddressRequestTag(key=KEY, value=VALUE)])).body
again = client.allocate_eip_address(vpc.AllocateEipAddressRequest(
    region_id=REGION, bandwidth="5", name="sdk-eip", client_token="sdk-eip-1",
    tag=[vpc.AllocateEipAddressRequestTag(key=KEY, value=VALUE)])).body
assert again.allocation_id == eip.allocation_id, "same ClientToken, same EIP"
shown = client.describe_eip_addresses(vpc.DescribeEipAddressesRequest(
    region_id=REGION, allocation_id=eip.allocation_id)).body.eip_addresses.eip_address[0]
assert shown.name == "sdk-eip" and shown.ip_address == eip.eip_address, shown.to_map()
assert [(t.key, t.value) for t in shown.tags.tag] == [(KEY, VALUE)], shown.to_map()

listed = {t: tagged(t) for t in ("VPC", "VSWITCH", "EIP")}
assert listed == {"VPC": [vpc_id], "VSWITCH": [vsw_id], "EIP": [eip.allocation_id]}, listed

client.tag_resources(vpc.TagResourcesRequest(
    region_id=REGION, resource_type="EIP", resource_id=[eip.allocation_id],
    tag=[vpc.TagResourcesRequestTag(key="team", value="images")]))
client.un_tag_resources(vpc.UnTagResourcesRequest(
    region_id=REGION, resource_type="EIP", resource_id=[eip.allocation_id], tag_key=[KEY]))
assert tagged("EIP") == [], "untagged"

client.release_eip_address(vpc.ReleaseEipAddressRequest(region_id=REGION, allocation_id=eip.allocation_id))
client.delete_vswitch(vpc.DeleteVSwitchRequest(region_id=REGION, v_switch_id=vsw_id))
client.delete_vpc(vpc.DeleteVpcRequest(region_id=REGION, vpc_id=vpc_id))
print(json.dumps({"vpc": vpc_id, "vswitch": vsw_id, "eip": eip.allocation_id, "listed": listed}))
