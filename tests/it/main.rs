//! The one integration-test binary.

mod calendar_files;
mod golden;
mod props;
mod rules;
mod support;
