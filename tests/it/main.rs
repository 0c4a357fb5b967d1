//! The one integration-test binary.

mod broker;
mod calendar_files;
mod cli;
mod config_file;
mod decode;
mod demo;
mod golden;
mod kafka;
mod props;
mod reports;
mod robust;
mod rules;
mod sample;
mod simulate;
mod support;
