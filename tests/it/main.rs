//! The one integration-test binary.

mod calendar_files;
mod cli;
mod decode;
mod golden;
mod props;
mod rules;
mod support;
