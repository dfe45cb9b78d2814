//! Security groups (ECS, 2014-05-26), VPCs and vSwitches (the VPC product, 2016-04-28, whose
//! CreateVpc/CreateVSwitch take `Tag.N`; ECS's deprecated copies of them do not).

use super::{action, numbered_paging, Ack, Params};
use crate::client::types::{inner_list, NetworkStatus, Tag};
use serde::Deserialize;

/// `CreateSecurityGroup`.
#[derive(Debug, Clone, Default)]
pub struct CreateSecurityGroup {
    pub region_id: String,
    pub vpc_id: Option<String>,
    pub security_group_name: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<Tag>,
    pub client_token: Option<String>,
}
action!(
    CreateSecurityGroup,
    "CreateSecurityGroup",
    ClientToken,
    CreateSecurityGroupResponse,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .opt("VpcId", self.vpc_id.as_ref())
            .opt("SecurityGroupName", self.security_group_name.as_ref())
            .opt("Description", self.description.as_ref())
            .tags(&self.tags)
            .opt("ClientToken", self.client_token.as_ref())
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateSecurityGroupResponse {
    pub security_group_id: String,
}

/// One inbound rule (`Permissions.N.*`).
#[derive(Debug, Clone, Default)]
pub struct Permission {
    /// `TCP|UDP|ICMP|GRE|ALL`.
    pub ip_protocol: String,
    /// `22/22`, `-1/-1`.
    pub port_range: String,
    pub source_cidr_ip: String,
    /// `accept|drop`.
    pub policy: Option<String>,
    pub priority: Option<u32>,
    pub description: Option<String>,
}

/// `AuthorizeSecurityGroup` (an identical existing rule succeeds unchanged).
#[derive(Debug, Clone, Default)]
pub struct AuthorizeSecurityGroup {
    pub region_id: String,
    pub security_group_id: String,
    pub permissions: Vec<Permission>,
    pub client_token: Option<String>,
}
action!(
    AuthorizeSecurityGroup,
    "AuthorizeSecurityGroup",
    ClientToken,
    Ack,
    |self| {
        let mut p = Params::new()
            .set("RegionId", &self.region_id)
            .set("SecurityGroupId", &self.security_group_id);
        for (i, rule) in self.permissions.iter().enumerate() {
            let n = i + 1;
            p = p
                .set(&format!("Permissions.{n}.IpProtocol"), &rule.ip_protocol)
                .set(&format!("Permissions.{n}.PortRange"), &rule.port_range)
                .set(
                    &format!("Permissions.{n}.SourceCidrIp"),
                    &rule.source_cidr_ip,
                )
                .opt(&format!("Permissions.{n}.Policy"), rule.policy.as_ref())
                .opt(&format!("Permissions.{n}.Priority"), rule.priority.as_ref())
                .opt(
                    &format!("Permissions.{n}.Description"),
                    rule.description.as_ref(),
                );
        }
        p.opt("ClientToken", self.client_token.as_ref())
    }
);

/// `DescribeSecurityGroups` (PageNumber paging).
#[derive(Debug, Clone, Default)]
pub struct DescribeSecurityGroups {
    pub region_id: String,
    pub vpc_id: Option<String>,
    /// `SecurityGroupIds` JSON array.
    pub security_group_ids: Vec<String>,
    pub security_group_name: Option<String>,
    pub tags: Vec<Tag>,
    pub page_number: Option<u32>,
    pub page_size: Option<u32>,
}
action!(
    DescribeSecurityGroups,
    "DescribeSecurityGroups",
    ReadOnly,
    DescribeSecurityGroupsResponse,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .opt("VpcId", self.vpc_id.as_ref())
            .json_list("SecurityGroupIds", &self.security_group_ids)
            .opt("SecurityGroupName", self.security_group_name.as_ref())
            .tags(&self.tags)
            .opt("PageNumber", self.page_number.as_ref())
            .opt("PageSize", self.page_size.as_ref())
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeSecurityGroupsResponse {
    #[serde(default, deserialize_with = "inner_list")]
    pub security_groups: Vec<SecurityGroup>,
    #[serde(default)]
    pub total_count: u32,
    #[serde(default)]
    pub page_size: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecurityGroup {
    pub security_group_id: String,
    #[serde(default)]
    pub security_group_name: String,
    #[serde(default)]
    pub vpc_id: String,
    /// When it was created (gc ages resources of builds it does not know by this).
    #[serde(default)]
    pub creation_time: String,
    #[serde(default, deserialize_with = "inner_list")]
    pub tags: Vec<Tag>,
}

numbered_paging!(DescribeSecurityGroups, SecurityGroup, security_groups, 50);

/// `DeleteSecurityGroup` (must hold no instances).
#[derive(Debug, Clone, Default)]
pub struct DeleteSecurityGroup {
    pub region_id: String,
    pub security_group_id: String,
}
action!(
    DeleteSecurityGroup,
    "DeleteSecurityGroup",
    Unprotected,
    Ack,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .set("SecurityGroupId", &self.security_group_id)
    }
);

/// `CreateVpc` (VPC API: tags at creation, ≤ 20).
#[derive(Debug, Clone, Default)]
pub struct CreateVpc {
    pub region_id: String,
    pub cidr_block: Option<String>,
    pub vpc_name: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<Tag>,
    pub client_token: Option<String>,
}
action!(
    CreateVpc,
    "CreateVpc",
    ClientToken,
    CreateVpcResponse,
    product = Vpc,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .opt("CidrBlock", self.cidr_block.as_ref())
            .opt("VpcName", self.vpc_name.as_ref())
            .opt("Description", self.description.as_ref())
            .tags(&self.tags)
            .opt("ClientToken", self.client_token.as_ref())
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateVpcResponse {
    pub vpc_id: String,
    #[serde(default)]
    pub v_router_id: String,
    #[serde(default)]
    pub route_table_id: String,
}

/// `CreateVSwitch` (VPC API: tags at creation; no concurrent creation in one VPC).
#[derive(Debug, Clone, Default)]
pub struct CreateVSwitch {
    pub region_id: String,
    pub vpc_id: String,
    pub zone_id: String,
    pub cidr_block: String,
    pub vswitch_name: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<Tag>,
    pub client_token: Option<String>,
}
action!(
    CreateVSwitch,
    "CreateVSwitch",
    ClientToken,
    CreateVSwitchResponse,
    product = Vpc,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .set("VpcId", &self.vpc_id)
            .set("ZoneId", &self.zone_id)
            .set("CidrBlock", &self.cidr_block)
            .opt("VSwitchName", self.vswitch_name.as_ref())
            .opt("Description", self.description.as_ref())
            .tags(&self.tags)
            .opt("ClientToken", self.client_token.as_ref())
    }
);

#[derive(Debug, Clone, Deserialize)]
pub struct CreateVSwitchResponse {
    #[serde(rename = "VSwitchId")]
    pub vswitch_id: String,
}

/// `DescribeVpcs` (PageNumber paging).
#[derive(Debug, Clone, Default)]
pub struct DescribeVpcs {
    pub region_id: String,
    pub vpc_id: Option<String>,
    pub vpc_name: Option<String>,
    pub page_number: Option<u32>,
    pub page_size: Option<u32>,
}
action!(
    DescribeVpcs,
    "DescribeVpcs",
    ReadOnly,
    DescribeVpcsResponse,
    product = Vpc,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .opt("VpcId", self.vpc_id.as_ref())
            .opt("VpcName", self.vpc_name.as_ref())
            .opt("PageNumber", self.page_number.as_ref())
            .opt("PageSize", self.page_size.as_ref())
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeVpcsResponse {
    #[serde(default, deserialize_with = "inner_list")]
    pub vpcs: Vec<Vpc>,
    #[serde(default)]
    pub total_count: u32,
    #[serde(default)]
    pub page_size: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Vpc {
    pub vpc_id: String,
    #[serde(default)]
    pub vpc_name: String,
    pub status: NetworkStatus,
    #[serde(default)]
    pub cidr_block: String,
    #[serde(default, rename = "VSwitchIds", deserialize_with = "inner_list")]
    pub vswitch_ids: Vec<String>,
    #[serde(default)]
    pub creation_time: String,
    #[serde(default, deserialize_with = "inner_list")]
    pub tags: Vec<Tag>,
    /// The region's default VPC, which does not count against the VPC quota.
    #[serde(default)]
    pub is_default: bool,
}

numbered_paging!(DescribeVpcs, Vpc, vpcs, 50);

/// `DescribeVSwitches` (PageNumber paging).
#[derive(Debug, Clone, Default)]
pub struct DescribeVSwitches {
    pub region_id: String,
    pub vpc_id: Option<String>,
    pub vswitch_id: Option<String>,
    pub zone_id: Option<String>,
    pub page_number: Option<u32>,
    pub page_size: Option<u32>,
}
action!(
    DescribeVSwitches,
    "DescribeVSwitches",
    ReadOnly,
    DescribeVSwitchesResponse,
    product = Vpc,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .opt("VpcId", self.vpc_id.as_ref())
            .opt("VSwitchId", self.vswitch_id.as_ref())
            .opt("ZoneId", self.zone_id.as_ref())
            .opt("PageNumber", self.page_number.as_ref())
            .opt("PageSize", self.page_size.as_ref())
    }
);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeVSwitchesResponse {
    #[serde(default, rename = "VSwitches", deserialize_with = "inner_list")]
    pub vswitches: Vec<VSwitch>,
    #[serde(default)]
    pub total_count: u32,
    #[serde(default)]
    pub page_size: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VSwitch {
    #[serde(rename = "VSwitchId")]
    pub vswitch_id: String,
    #[serde(default, rename = "VSwitchName")]
    pub vswitch_name: String,
    #[serde(default)]
    pub vpc_id: String,
    #[serde(default)]
    pub zone_id: String,
    #[serde(default)]
    pub cidr_block: String,
    pub status: NetworkStatus,
    #[serde(default)]
    pub creation_time: String,
    #[serde(default, deserialize_with = "inner_list")]
    pub tags: Vec<Tag>,
}

numbered_paging!(DescribeVSwitches, VSwitch, vswitches, 50);

/// `DeleteVpc`.
#[derive(Debug, Clone, Default)]
pub struct DeleteVpc {
    pub region_id: String,
    pub vpc_id: String,
}
action!(
    DeleteVpc,
    "DeleteVpc",
    Unprotected,
    Ack,
    product = Vpc,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .set("VpcId", &self.vpc_id)
    }
);

/// `DeleteVSwitch`.
#[derive(Debug, Clone, Default)]
pub struct DeleteVSwitch {
    pub region_id: String,
    pub vswitch_id: String,
}
action!(
    DeleteVSwitch,
    "DeleteVSwitch",
    Unprotected,
    Ack,
    product = Vpc,
    |self| {
        Params::new()
            .set("RegionId", &self.region_id)
            .set("VSwitchId", &self.vswitch_id)
    }
);
