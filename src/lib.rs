//! jiancha (监察): electronic supervision of government approval services.
//!
//! Case events from departmental approval systems go in; working-day clocks,
//! yellow and red cards, dead letters and figures come out. The rules engine
//! ([`engine`]) is pure; the shells ([`replay`], later Kafka) feed it and carry
//! its effects to files and topics.

pub mod alert;
pub mod calendar;
pub mod cli;
pub mod config;
pub mod deadletter;
pub mod demo;
pub mod engine;
pub mod event;
pub mod history;
pub mod kafka;
pub mod metrics;
pub mod pipeline;
pub mod privacy;
pub mod reference;
pub mod replay;
pub mod serve;
pub mod sql;
pub mod synth;
pub mod time;
