//! The one integration-test binary.

mod calendar_files;
mod golden;
mod rules;
mod support;
