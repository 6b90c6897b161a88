//! One file per command.

pub mod check;
pub mod import_lambda;
pub mod keys;
pub mod validate;
pub mod windows;
