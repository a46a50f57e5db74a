//! A delivery from a work queue read back into what the pipeline handles: a [`Job`]
//! with its attempt count and enqueue time from the headers, or, when the body is not
//! a work item (someone published to a work queue by hand), intake.

use lapin::types::{AMQPValue, FieldTable};

use super::{Incoming, IntakeSettle, Job, QueueError, Settle, HEADER_ATTEMPTS, HEADER_ENQUEUED_MS};
use crate::work::WorkItem;

fn header_u64(headers: &Option<FieldTable>, name: &str) -> Option<u64> {
    match headers.as_ref()?.inner().get(name)? {
        AMQPValue::LongLongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongUInt(v) => Some(u64::from(*v)),
        _ => None,
    }
}

/// Whether the sender set [`super::COMPLETE_RECORD_HEADER`] (a boolean,
/// or the text `true`).
pub(super) fn declared_complete(headers: &Option<FieldTable>) -> bool {
    let name = super::COMPLETE_RECORD_HEADER;
    match headers.as_ref().and_then(|h| h.inner().get(name)) {
        Some(AMQPValue::Boolean(b)) => *b,
        Some(AMQPValue::LongString(s)) => s.to_string().eq_ignore_ascii_case("true"),
        Some(AMQPValue::ShortString(s)) => s.as_str().eq_ignore_ascii_case("true"),
        _ => false,
    }
}

pub(super) fn decode_job(delivery: lapin::message::Delivery) -> Result<Incoming, QueueError> {
    let headers = delivery.properties.headers();
    let attempts = header_u64(headers, HEADER_ATTEMPTS)
        .and_then(|a| u32::try_from(a).ok())
        .unwrap_or(0);
    let enqueued_ms = header_u64(headers, HEADER_ENQUEUED_MS);
    match serde_json::from_slice::<WorkItem>(&delivery.data) {
        Ok(item) => Ok(Incoming::Work(Job {
            item,
            attempts,
            redelivered: delivery.redelivered,
            enqueued_ms,
            settle: Settle::Rabbit(delivery.acker),
        })),
        // Not a work item (someone published to a work queue by hand): treat as intake.
        Err(_) => Ok(Incoming::Intake {
            declared_complete: declared_complete(delivery.properties.headers()),
            body: delivery.data,
            settle: IntakeSettle(delivery.acker),
        }),
    }
}
