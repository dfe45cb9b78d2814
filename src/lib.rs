//! bakerd builds Alibaba Cloud ECS images from a YAML spec through the persisted phases
//! instance → provisioned → snapshot → image, and resumes any interrupted build.
//!
//! Components:
//! - [`sign`]: the pure V1 (HMAC-SHA1) and V3 (ACS3-HMAC-SHA256) request signer.
//! - [`sshkey`]: the OpenSSH private key format (ed25519), for key files and the simulator.
//! - [`client`]: the thin, typed ECS API client: HTTP, retries, throttling, waiters, credentials.
//! - [`spec`]: the YAML spec, its validation, and Packer template conversion.
//! - [`reconciler`]: the reconciler: sled state, the phase machine, SSH provisioning, cleanup and gc.
//! - [`sim`]: `bakerd sim`, a local ECS simulator whose instances are real OpenSSH servers.
//!   The product talks to it only over HTTP and SSH, exactly as to the real cloud.
//! - [`secret`]: the redacting [`secret::Secret`] string shared by the client and the spec.
//! - [`cli`]: command-line parsing and dispatch.

pub mod cli;
pub mod client;
pub mod reconciler;
pub mod secret;
pub mod sign;
pub mod sim;
pub mod spec;
pub mod sshkey;
