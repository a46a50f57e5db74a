//! Intake: notifications, intake-queue messages and reconciliation, reduced to work.

pub mod gaps;
pub mod message;
pub mod notification;
pub mod reconcile;
pub mod subscriptions;
pub mod topic;
