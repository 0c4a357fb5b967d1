//! The one integration-test binary.

mod calendar_files;
mod cli;
mod config_file;
mod decode;
mod golden;
mod props;
mod robust;
mod rules;
mod sample;
mod simulate;
mod support;
