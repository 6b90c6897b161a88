//! `kind = "sns"`: an AWS SNS topic.

use super::{Fields, url};
use crate::config::ConfigErrorKind as K;
use crate::config::validate::Ctx;
use crate::inventory::ChannelKind;

pub(super) fn build(ctx: &mut Ctx, f: &mut Fields<'_>) -> Option<ChannelKind> {
    let arn = f.required(ctx, "topic_arn");
    if let Some(a) = &arn {
        let v = a.get_ref();
        if !(v.starts_with("arn:")
            && v.split(':').count() == 6
            && v.split(':').nth(2) == Some("sns"))
        {
            ctx.err(a.span(), K::TopicArn { value: v.clone() });
        }
    }
    let region = f.string(ctx, "region").map(|r| r.into_inner());
    let endpoint_url = f.string(ctx, "endpoint_url").map(|e| url(ctx, &e));
    let sms = f.boolean(ctx, "sms").unwrap_or(false);
    Some(ChannelKind::Sns {
        topic_arn: arn?.into_inner(),
        region,
        endpoint_url,
        sms,
    })
}
