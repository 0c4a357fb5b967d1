//! jiancha (监察): electronic supervision of government approval services.
//!
//! Case events from departmental approval systems go in; working-day clocks,
//! yellow and red cards, dead letters and figures come out. The rules engine
//! ([`engine`]) is pure; one driver ([`pipeline`]) takes every event from a
//! source through decoding, the engine and history to the sinks; the shells
//! ([`replay`], [`demo`], [`kafka`]) only choose sources and sinks.
//!
//! # Layout
//!
//! - [`cli`], [`config`]: commands and configuration.
//! - [`time`], [`calendar`], [`reference`]: instants and zones, working
//!   days, the catalogue and regions.
//! - [`event`], [`privacy`], [`deadletter`]: the event contract decoded and
//!   checked, applicant hashing, dead-letter reasons.
//! - [`engine`]: the pure rules engine, one file a rule under
//!   `engine/rules/`; [`alert`]: the record it publishes; [`binary`]: the
//!   binary format of its snapshots.
//! - [`pipeline`]: source → decode → engine + [`history`] → sinks.
//! - [`replay`], [`demo`], [`kafka`]: the shells.
//! - [`serve`], [`metrics`], [`sql`]: HTTP, the board, Prometheus, the
//!   PostgreSQL endpoint and the reports.
//! - [`synth`]: the simulator.

pub mod alert;
pub mod backoff;
pub mod binary;
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
