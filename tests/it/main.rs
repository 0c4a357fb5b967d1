//! The one integration-test binary.

mod alertmanager;
mod api;
mod board;
mod calendar_files;
mod cli;
mod config_file;
mod decode;
mod demo;
mod deploy;
mod follow_up;
mod golden;
mod kafka;
mod metrics;
mod pgwire;
mod props;
mod provisional;
mod reports;
mod robust;
mod rules;
mod sample;
mod simulate;
mod sql_limits;
mod steps;
mod supervision;
mod support;
mod unlisted;
