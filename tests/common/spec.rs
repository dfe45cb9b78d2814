//! The YAML spec most tests build on the simulator, in one place.

use super::instances::{BASE_IMAGE, INSTANCE_TYPE, REGION};

/// The `credentials` section with the simulator's test key (tests that set no key in the
/// environment). Remove it (`.replace(TEST_CREDENTIALS, "")`) to take the key from the environment.
pub const TEST_CREDENTIALS: &str =
    "credentials:\n  access_key_id: testid\n  access_key_secret: testsecret\n";

/// A build spec for the simulator: the test key, the simulator's base image and instance type,
/// root over SSH with a one-minute timeout, two-minute waits, `provisioners` (YAML list items)
/// and the image name `image_name`. `extra` goes right after the `ssh` section: indented lines
/// add to it (`"  address: eip"`), unindented ones are top-level sections (`"on_failure: keep"`).
pub fn sim_spec(image_name: &str, extra: &str, provisioners: &str) -> String {
    format!(
        "region: {REGION}
{TEST_CREDENTIALS}source_image:
  id: {BASE_IMAGE}
instance:
  type: {INSTANCE_TYPE}
ssh:
  username: root
  timeout: 1m
{extra}
provisioners:
{provisioners}
image:
  name: {image_name}
timeouts:
  instance: 2m
  snapshot: 2m
  image: 2m
"
    )
}
