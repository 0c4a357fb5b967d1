//! The one integration-test binary.

mod calendar_files;
mod cli;
mod config_file;
mod decode;
mod demo;
mod golden;
mod props;
mod reports;
mod robust;
mod rules;
mod sample;
mod simulate;
mod support;
