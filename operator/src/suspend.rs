//! `spec.suspend`: every instance stopped (autoscaling on or off) with the state and the
//! committed offsets kept, and run again from where they stopped when it goes back to `false`.
//! Only the StatefulSet's replica count changes: the pods' manifest, the PVCs and the group's
//! offsets stay, so a resume restores from the local state and goes on from the committed
//! offsets, as a restart does.

use freshet_crds::StreamsApp;

use crate::status::{self, Judged};

/// The condition: True while the app is suspended.
pub const SUSPENDED: &str = "Suspended";

/// Whether `spec.suspend` is true.
pub fn is_suspended(app: &StreamsApp) -> bool {
    app.spec.suspend == Some(true)
}

/// The `Suspended` condition: True while suspended; False once resumed (only when it was set
/// before, so apps never suspended do not carry it).
pub fn condition(app: &StreamsApp) -> Option<Judged> {
    if is_suspended(app) {
        return Some(Judged::new(
            SUSPENDED,
            true,
            "Suspended",
            "spec.suspend is true: no instance runs; the state and the committed offsets are kept, and setting it to false resumes from where it stopped",
        ));
    }
    app.status
        .as_ref()?
        .conditions
        .iter()
        .any(|c| c.type_ == SUSPENDED)
        .then(|| {
            Judged::new(
                SUSPENDED,
                false,
                "Resumed",
                "spec.suspend is false: the instances run",
            )
        })
}

/// The `Scaling` condition while suspended: 0 instances, whatever was asked or autoscaled.
pub fn scaling() -> Judged {
    Judged::new(
        status::SCALING,
        false,
        "Suspended",
        "spec.suspend is true: the StatefulSet runs 0 instances",
    )
}

/// The `Ready` condition while suspended, with how many pods are still going.
pub fn ready(pods_left: i32) -> Judged {
    Judged::new(
        status::READY,
        false,
        "Suspended",
        if pods_left > 0 {
            format!("suspended: {pods_left} instances still stopping")
        } else {
            "suspended: no instance runs".to_owned()
        },
    )
}
