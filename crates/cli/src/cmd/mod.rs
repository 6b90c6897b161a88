//! One file per command.

pub mod check;
pub mod events;
pub mod import_lambda;
pub mod keys;
pub mod lambda;
pub mod maintenance;
pub mod report;
pub mod serve;
pub mod validate;
pub mod windows;
