//! The phases of a build and their order.
//!
//! A build moves through the four phases the user sees — instance → provisioned → snapshot → image —
//! with small preparatory and finishing steps around them. Each transition is taken by value
//! (`Phase::next` consumes the current phase), so a phase can never be "half left": the reconciler
//! persists the phase it reaches before it starts the next step.

use serde::{Deserialize, Serialize};

/// Where a build stands. Persisted in the state store after every transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Recorded, nothing created yet.
    Pending,
    /// Key pair imported; security group and vSwitch exist (given or temporary).
    Prepared,
    /// The instance exists (its id is in the state), maybe not running yet.
    InstanceCreated,
    /// Running, reachable address known, SSH host key pinned.
    InstanceRunning,
    /// Every provisioner finished (each one is checkpointed on its own).
    Provisioned,
    /// Stopped for a consistent snapshot (or skipped when `stop_before_snapshot: false`).
    InstanceStopped,
    /// The disk snapshots (system disk, plus data disks the image carries) are `accomplished`
    /// (Status and Progress both checked).
    SnapshotReady,
    /// The image is `Available`.
    ImageReady,
    /// The image passed the spec's `verify` checks (or there are none), then was copied and shared.
    Verified,
    /// Instance, key pair and temporary network deleted; local key removed.
    CleanedUp,
    /// Terminal: the image exists and nothing temporary is left.
    Succeeded,
    /// Terminal until resumed: `at` is the phase whose step failed; `resume` retries that step.
    Failed { at: Box<Phase>, error: String },
    /// Terminal: cancelled by `bakerd cancel`; what the build created was cleaned up.
    Cancelled,
}

impl Phase {
    /// The phase reached when the step that starts at `self` succeeds.
    ///
    /// Terminal phases stay where they are.
    pub fn next(self) -> Phase {
        use Phase::*;
        match self {
            Pending => Prepared,
            Prepared => InstanceCreated,
            InstanceCreated => InstanceRunning,
            InstanceRunning => Provisioned,
            Provisioned => InstanceStopped,
            InstanceStopped => SnapshotReady,
            SnapshotReady => ImageReady,
            ImageReady => Verified,
            Verified => CleanedUp,
            CleanedUp => Succeeded,
            terminal @ (Succeeded | Failed { .. } | Cancelled) => terminal,
        }
    }

    /// Records a failure of the step that starts at `self`.
    pub fn fail(self, error: impl Into<String>) -> Phase {
        match self {
            // A failure while already failed keeps the original failing step.
            Phase::Failed { at, .. } => Phase::Failed {
                at,
                error: error.into(),
            },
            other => Phase::Failed {
                at: Box::new(other),
                error: error.into(),
            },
        }
    }

    /// The phase a `resume` starts from: a failed build retries its failed step.
    pub fn resume_from(self) -> Phase {
        match self {
            Phase::Failed { at, .. } => *at,
            other => other,
        }
    }

    /// True for phases where the reconciler has nothing left to do.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Phase::Succeeded | Phase::Failed { .. } | Phase::Cancelled
        )
    }

    /// Short, stable name used in output, events and `status`.
    pub fn name(&self) -> &'static str {
        use Phase::*;
        match self {
            Pending => "pending",
            Prepared => "prepared",
            InstanceCreated => "instance-created",
            InstanceRunning => "instance-running",
            Provisioned => "provisioned",
            InstanceStopped => "instance-stopped",
            SnapshotReady => "snapshot-ready",
            ImageReady => "image-ready",
            Verified => "verified",
            CleanedUp => "cleaned-up",
            Succeeded => "succeeded",
            Failed { .. } => "failed",
            Cancelled => "cancelled",
        }
    }

    /// What the step that starts at this phase does, for progress lines.
    pub fn step_description(&self) -> &'static str {
        use Phase::*;
        match self {
            Pending => "prepare key pair and network",
            Prepared => "create instance",
            InstanceCreated => "start instance and connect over SSH",
            InstanceRunning => "run provisioners",
            Provisioned => "stop instance",
            InstanceStopped => "snapshot disks",
            SnapshotReady => "create image",
            ImageReady => "verify, copy and share image",
            Verified => "clean up temporary resources",
            CleanedUp => "finish",
            Succeeded | Failed { .. } | Cancelled => "nothing",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_run_in_the_documented_order_and_end_succeeded() {
        let mut phase = Phase::Pending;
        let mut seen = vec![phase.name()];
        while !phase.is_terminal() {
            phase = phase.next();
            seen.push(phase.name());
        }
        assert_eq!(
            seen,
            [
                "pending",
                "prepared",
                "instance-created",
                "instance-running",
                "provisioned",
                "instance-stopped",
                "snapshot-ready",
                "image-ready",
                "verified",
                "cleaned-up",
                "succeeded"
            ]
        );
    }

    #[test]
    fn a_failed_build_resumes_at_the_step_that_failed() {
        let failed = Phase::InstanceRunning.fail("provisioner 2 exited 3");
        assert!(failed.is_terminal());
        let again = failed.fail("second failure");
        assert_eq!(again.clone().resume_from(), Phase::InstanceRunning);
        assert!(matches!(again, Phase::Failed { error, .. } if error == "second failure"));
    }

    #[test]
    fn phases_serialize_with_a_stable_tag() {
        let json = serde_json::to_string(&Phase::SnapshotReady.fail("boom")).unwrap();
        assert_eq!(
            json,
            r#"{"phase":"failed","at":{"phase":"snapshot_ready"},"error":"boom"}"#
        );
        let back: Phase = serde_json::from_str(&json).unwrap();
        assert_eq!(back.resume_from(), Phase::SnapshotReady);
    }
}
