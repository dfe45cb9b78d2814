//! The reconciler: sled state, the phase machine, SSH provisioning, cleanup and gc.
