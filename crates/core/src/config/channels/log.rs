//! `kind = "log"`: a JSON line per message, to stdout or appended to a file.

use super::Fields;
use crate::config::validate::Ctx;
use crate::inventory::ChannelKind;

pub(super) fn build(ctx: &mut Ctx, f: &mut Fields<'_>) -> Option<ChannelKind> {
    Some(ChannelKind::Log {
        path: f.string(ctx, "path").map(|p| p.into_inner()),
    })
}
