//! One file per command.

#[cfg(feature = "assets")]
pub mod assets;
pub mod check;
pub mod events;
pub mod import_lambda;
pub mod keys;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod maintenance;
pub mod notify;
pub mod report;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub mod serve;
pub mod validate;
pub mod windows;
