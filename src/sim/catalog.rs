//! What every simulated region offers without anyone creating it: regions, zones, instance types and
//! the built-in system images.

/// A region and its zones.
pub struct RegionInfo {
    pub id: &'static str,
    pub local_name: &'static str,
    pub zones: &'static [&'static str],
}

pub const REGIONS: &[RegionInfo] = &[
    RegionInfo {
        id: "cn-hangzhou",
        local_name: "华东1（杭州）",
        zones: &[
            "cn-hangzhou-h",
            "cn-hangzhou-i",
            "cn-hangzhou-j",
            "cn-hangzhou-k",
        ],
    },
    RegionInfo {
        id: "cn-shanghai",
        local_name: "华东2（上海）",
        zones: &[
            "cn-shanghai-e",
            "cn-shanghai-f",
            "cn-shanghai-g",
            "cn-shanghai-l",
        ],
    },
    RegionInfo {
        id: "cn-beijing",
        local_name: "华北2（北京）",
        zones: &[
            "cn-beijing-g",
            "cn-beijing-h",
            "cn-beijing-i",
            "cn-beijing-j",
        ],
    },
    RegionInfo {
        id: "cn-shenzhen",
        local_name: "华南1（深圳）",
        zones: &["cn-shenzhen-d", "cn-shenzhen-e", "cn-shenzhen-f"],
    },
    RegionInfo {
        id: "ap-southeast-1",
        local_name: "新加坡",
        zones: &["ap-southeast-1a", "ap-southeast-1b", "ap-southeast-1c"],
    },
    RegionInfo {
        id: "us-west-1",
        local_name: "美国（硅谷）",
        zones: &["us-west-1a", "us-west-1b"],
    },
];

pub fn region(id: &str) -> Option<&'static RegionInfo> {
    REGIONS.iter().find(|r| r.id == id)
}

/// An instance type.
pub struct InstanceType {
    pub id: &'static str,
    pub family: &'static str,
    pub cpus: i64,
    pub memory_gib: f64,
}

pub const INSTANCE_TYPES: &[InstanceType] = &[
    InstanceType {
        id: "ecs.s2.large",
        family: "ecs.s2",
        cpus: 2,
        memory_gib: 4.0,
    },
    InstanceType {
        id: "ecs.t6-c1m1.large",
        family: "ecs.t6",
        cpus: 2,
        memory_gib: 2.0,
    },
    InstanceType {
        id: "ecs.c7.large",
        family: "ecs.c7",
        cpus: 2,
        memory_gib: 4.0,
    },
    InstanceType {
        id: "ecs.g7.large",
        family: "ecs.g7",
        cpus: 2,
        memory_gib: 8.0,
    },
    InstanceType {
        id: "ecs.g8i.xlarge",
        family: "ecs.g8i",
        cpus: 4,
        memory_gib: 16.0,
    },
    InstanceType {
        id: "ecs.u1-c1m2.large",
        family: "ecs.u1",
        cpus: 2,
        memory_gib: 4.0,
    },
];

pub fn instance_type(id: &str) -> Option<&'static InstanceType> {
    INSTANCE_TYPES.iter().find(|t| t.id == id)
}

/// A built-in system image, present in every region.
pub struct SystemImage {
    pub id: &'static str,
    pub os_name: &'static str,
    pub family: &'static str,
    pub size_gib: i64,
    pub creation_time: &'static str,
    /// Content of the image's `/etc/os-release`.
    pub os_release: &'static str,
}

pub const SYSTEM_IMAGES: &[SystemImage] = &[
    SystemImage {
        id: "ubuntu1404_64_40G_cloudinit_20160427.raw",
        os_name: "Ubuntu  14.04 64位",
        family: "",
        size_gib: 40,
        creation_time: "2016-04-27T00:00:00Z",
        os_release: "NAME=\"Ubuntu\"\nVERSION=\"14.04.4 LTS, Trusty Tahr\"\nID=ubuntu\nID_LIKE=debian\nPRETTY_NAME=\"Ubuntu 14.04.4 LTS\"\nVERSION_ID=\"14.04\"\n",
    },
    SystemImage {
        id: "ubuntu_22_04_x64_20G_alibase_20240926.vhd",
        os_name: "Ubuntu  22.04 64位",
        family: "acs:ubuntu_22_04_x64",
        size_gib: 20,
        creation_time: "2024-09-26T00:00:00Z",
        os_release: "PRETTY_NAME=\"Ubuntu 22.04.5 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nVERSION=\"22.04.5 LTS (Jammy Jellyfish)\"\nVERSION_CODENAME=jammy\nID=ubuntu\nID_LIKE=debian\n",
    },
    SystemImage {
        id: "ubuntu_24_04_x64_20G_alibase_20251010.vhd",
        os_name: "Ubuntu  24.04 64位",
        family: "acs:ubuntu_24_04_x64",
        size_gib: 20,
        creation_time: "2025-10-10T00:00:00Z",
        os_release: "PRETTY_NAME=\"Ubuntu 24.04.3 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nVERSION=\"24.04.3 LTS (Noble Numbat)\"\nVERSION_CODENAME=noble\nID=ubuntu\nID_LIKE=debian\n",
    },
];

pub fn system_image(id: &str) -> Option<&'static SystemImage> {
    SYSTEM_IMAGES.iter().find(|i| i.id == id)
}
