//! What the consumer loop does about an error, decided in one place.
//!
//! - **Skip**: one message could not be read (bad framing, bad
//!   compression, a corrupt record): counted in
//!   `jiancha_source_errors_total`, logged, and the loop goes on. Nothing of
//!   it reached the engine.
//! - **Retry**: the brokers are unreachable or the topic is missing for
//!   now: counted, logged at most every few seconds, and the loop polls
//!   again after [`POLL_BACKOFF`] (doubling up to [`MAX_BACKOFF`], with
//!   jitter), which starts over once a message comes. The client
//!   reconnects by itself.
//! - **Fatal**: the client is in a state it cannot leave (librdkafka's fatal
//!   errors) or is refused for good (authentication, authorization): the
//!   service stops with the error; its last checkpoints stand.
//!
//! An error once a message was handed to a partition's pipeline (history,
//! a checkpoint, publishing a record) is always fatal: the event may be
//! half-applied, and only a restart from the checkpoint — which reads the
//! records published since — keeps every event's effect exactly once.

use crate::backoff::Backoff;
use rdkafka::error::KafkaError as ClientError;
use rdkafka::error::RDKafkaErrorCode as Code;
use std::time::Duration;

/// The longest wait between polls while the brokers fail.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What to do about an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Count it and go on.
    Skip,
    /// Count it and poll again after a backoff.
    Retry,
    /// Stop the service.
    Fatal,
}

/// The disposition of an error the consumer's poll returned (not
/// `PartitionEOF`, which is no error).
pub fn of_poll(e: &ClientError) -> Disposition {
    if matches!(e, ClientError::MessageConsumptionFatal(_)) {
        return Disposition::Fatal;
    }
    match e.rdkafka_error_code() {
        Some(
            Code::Fatal
            | Code::Authentication
            | Code::SaslAuthenticationFailed
            | Code::TopicAuthorizationFailed
            | Code::GroupAuthorizationFailed,
        ) => Disposition::Fatal,
        Some(Code::BadMessage | Code::BadCompression | Code::InvalidMessage | Code::InvalidRecord) => Disposition::Skip,
        _ => Disposition::Retry,
    }
}

/// The waits between polls while the brokers fail: 40 ms, doubling up to
/// [`MAX_BACKOFF`], with jitter.
pub const POLL_BACKOFF: Backoff = Backoff { first: Duration::from_millis(40), max: MAX_BACKOFF };

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_trouble_is_retried_bad_records_skipped_refusals_fatal() {
        let poll = |c| of_poll(&ClientError::MessageConsumption(c));
        assert_eq!(poll(Code::BrokerTransportFailure), Disposition::Retry);
        assert_eq!(poll(Code::AllBrokersDown), Disposition::Retry);
        assert_eq!(poll(Code::UnknownTopicOrPartition), Disposition::Retry);
        assert_eq!(poll(Code::BadMessage), Disposition::Skip);
        assert_eq!(poll(Code::BadCompression), Disposition::Skip);
        assert_eq!(poll(Code::TopicAuthorizationFailed), Disposition::Fatal);
        assert_eq!(poll(Code::Fatal), Disposition::Fatal);
        assert_eq!(of_poll(&ClientError::MessageConsumptionFatal(Code::Fail)), Disposition::Fatal);
    }
}
