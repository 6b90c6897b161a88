//! Message templates: a subject and a body per verdict, rendered with minijinja.
//!
//! Lookup order: the cluster's templates, then its customer's, then the inventory's
//! `[templates]`, then the built-in defaults (the original handler's two messages, with
//! their typos fixed, plus the window and the times in the cluster's zone).
//! Undefined variables are errors, so a typo in a template fails `validate`, not a delivery.

use std::collections::HashMap;

use minijinja::{Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};

use crate::inventory::{ClusterId, CustomerId, MessageKind};

/// Default subjects, by verdict.
pub const DEFAULT_SUBJECTS: [(MessageKind, &str); 6] = [
    (
        MessageKind::Planned,
        "{% if fenced %}Planned: {{ previous }} of {{ cluster }} was fenced{% elif fault %}Planned: {{ host }} of {{ cluster }} reports a fault{% else %}Planned failover: {{ cluster }} is now active on {{ host }}{% endif %}",
    ),
    (
        MessageKind::Unplanned,
        "{% if fenced %}UNPLANNED: {{ previous }} of {{ cluster }} was fenced{% elif fault %}UNPLANNED: {{ host }} of {{ cluster }} reports a fault{% else %}UNPLANNED failover: {{ cluster }} is now active on {{ host }}{% endif %}",
    ),
    (
        MessageKind::UnknownHost,
        "Failover report from unknown host {{ host }}",
    ),
    (
        MessageKind::ClusterStart,
        "Cluster started: {{ cluster }} is now active on {{ host }}",
    ),
    (
        MessageKind::NotBack,
        "Still not back: {{ cluster }} is on {{ host }} after its maintenance window",
    ),
    (
        MessageKind::Back,
        "Back: {{ cluster }} is active on {{ host }} again",
    ),
];

/// The most an SMS text may take: one segment of 140 bytes (160 GSM-7 characters).
pub const SMS_MAX: usize = 140;

/// Default SMS texts, by verdict: who is active now, since when, and why.
pub fn default_sms(verdict: MessageKind) -> &'static str {
    match verdict {
        MessageKind::Planned => {
            "{% if fenced %}Planned: {{ previous }} of {{ cluster }} fenced at {{ at }} ({{ window.name }}){% elif fault %}Planned: {{ host }} of {{ cluster }} in fault since {{ at }} ({{ window.name }}){% else %}Planned failover {{ cluster }}: now on {{ host }} since {{ at }} ({{ window.name }}){% if flapping %}, flapping{% endif %}{% endif %}"
        }
        MessageKind::Unplanned => {
            "{% if fenced %}UNPLANNED: {{ previous }} of {{ cluster }} fenced at {{ at }}{% elif fault %}UNPLANNED: {{ host }} of {{ cluster }} in fault since {{ at }}{% else %}UNPLANNED failover {{ cluster }}: now on {{ host }} since {{ at }}{% if flapping %}, flapping{% endif %}{% if failback %}, a failback{% endif %}{% endif %}"
        }
        MessageKind::UnknownHost => "Failover report from unknown host {{ host }} at {{ at }}",
        MessageKind::ClusterStart => "Cluster {{ cluster }} started on {{ host }} at {{ at }}",
        MessageKind::NotBack => {
            "STILL NOT BACK {{ cluster }}: on {{ host }} after its window, expected on {{ usual }} by {{ back_by }}"
        }
        MessageKind::Back => {
            "Back: {{ cluster }} on {{ host }} again since {{ at }}, after its window"
        }
    }
}

/// `text` as one SMS segment: its lines joined by spaces, cut to [`SMS_MAX`] bytes on a
/// character boundary with `...` marking the cut.
pub fn fit_sms(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.len() <= SMS_MAX {
        return one_line;
    }
    let mut end = SMS_MAX - 3;
    while !one_line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", one_line[..end].trim_end())
}

/// The first sentence of the planned and unplanned bodies: the original's, a node's own
/// fault, or a fencing.
const FAILED_OVER: &str = "{% if fenced %}Server {{ previous }} was fenced: the cluster \
powered it off or rebooted it, as {{ host }} saw.  A cluster fences a node it cannot trust \
any more (it stopped answering, or a resource on it could not be stopped); the failover \
message, if it ran resources, is sent on its own.{% elif fault %}Server {{ host }} reports a fault: it cannot serve \
{{ cluster }} (for keepalived, a tracked interface or script failed).  If it was the active \
host, {{ previous }} takes over and a failover message follows; if it was the standby, \
{{ cluster }} runs without one until {{ host }} recovers.{% else %}{{ previous }} has failed \
over.  Server {{ host }} is currently the active host.{% endif %}";

/// What the history says about an event: flapping, failback.
const HISTORY: &str = "{% if flapping %}\n\n{{ cluster }} is flapping: it failed over more than \
{{ flapping_count }} times within {{ flapping_within }}.{% endif %}{% if failback %}\n\nThis is a \
failback: {{ host }} was active before the failover at {{ failback_of }}.{% endif %}";

const LAST_LINES: &str = "\n\nPlease reach out to your Support Team if you notice any errors or \
issues in the meantime.\n\nThis is an automated message.";

/// Default bodies, by verdict. The first sentence is the original's.
pub fn default_body(verdict: MessageKind) -> String {
    let head = match verdict {
        MessageKind::Planned => {
            "{FAILED_OVER}\n\n\
This was likely due to patching: it happened at {{ at }} ({{ time_zone }}), inside the \
maintenance window \"{{ window.name }}\" of {{ window.owner }} ({{ window.start }} to \
{{ window.end }}, {{ window.time_zone }}).  DevOps will follow up during regular business hours \
to verify."
        }
        MessageKind::Unplanned => {
            "{FAILED_OVER}\n\n\
There was no known patching causing this event: no maintenance window of {{ cluster }} was open \
at {{ at }} ({{ time_zone }}).  DevOps will investigate."
        }
        MessageKind::UnknownHost => {
            "A failover report arrived at {{ at }} ({{ time_zone }}) from {{ host }}, which is \
not in the inventory.  Add the host to a cluster, or find out what sends reports with this API \
key."
        }
        MessageKind::ClusterStart => {
            "Server {{ host }} became the active host of {{ cluster }} at {{ at }} ({{ time_zone }}).\n\n\
This is the first report from {{ cluster }}, so it is taken as the cluster starting, not as a \
failover.  If {{ cluster }} was already running on another node before, this was a failover: \
check why."
        }
        MessageKind::NotBack => {
            "{{ cluster }} failed over to {{ host }} at {{ at }}, inside the \
maintenance window \"{{ window.name }}\" of {{ window.owner }} ({{ window.start }} to \
{{ window.end }}, {{ window.time_zone }}).\n\n\
That window has ended and {{ cluster }} is still running on {{ host }}, not on its usual node \
{{ usual }}: it was expected back by {{ back_by }} ({{ time_zone }}).  Check that the work on \
{{ usual }} is finished and fail the cluster back, or tell DevOps why it stays on {{ host }}.\n\n\
A message follows when {{ cluster }} is back on {{ usual }}."
        }
        MessageKind::Back => {
            "{{ cluster }} failed back to {{ host }} at {{ at }} ({{ time_zone }}).  It had run on \
{{ previous }} since the planned failover at {{ failback_of }}, and was expected back by \
{{ back_by }}: the reminder that it was not back has been sent.  Nothing more to do unless \
{{ previous }} shows a problem."
        }
    };
    let head = head.replace("{FAILED_OVER}", FAILED_OVER);
    let history = match verdict {
        // They follow a failover already told: the history would repeat it.
        MessageKind::NotBack | MessageKind::Back => "",
        _ => HISTORY,
    };
    format!("{head}{history}{LAST_LINES}")
}

/// Where a template set applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `[templates]` and the built-in defaults.
    Global,
    /// A customer's `templates`.
    Customer(CustomerId),
    /// A cluster's `templates`.
    Cluster(ClusterId),
}

/// The window part of a message's context.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WindowContext {
    /// Window name.
    pub name: String,
    /// Node, cluster or customer it belongs to.
    pub owner: String,
    /// Local start, `2026-12-09 22:00`.
    pub start: String,
    /// Local end.
    pub end: String,
    /// Zone of start and end.
    pub time_zone: String,
}

/// Everything a template can use, stored with the event as it was when the event was
/// decided, so that a message sent later (a retry, a reminder) tells what was known then.
///
/// Stored as JSON (a column, or the DynamoDB item). A field added later takes its default
/// when a row written before it is read (`#[serde(default)]`), and members this release does
/// not know are ignored; [`MessageContext::VERSION`] is written with each context so a later
/// release can tell the shapes apart should a field ever change its meaning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MessageContext {
    /// The message kind: `planned`, `unplanned`, `unknown-host`, `cluster-start`, `back`
    /// (an event's own verdict), or `not-back` for its reminder.
    pub verdict: MessageKind,
    /// The host that reported (the new active node).
    pub host: String,
    /// The node that was active before, or a phrase naming the other nodes.
    pub previous: String,
    /// Cluster name (the host for an unknown host).
    pub cluster: String,
    /// Customer name, or empty.
    pub customer: String,
    /// All nodes of the cluster.
    pub nodes: Vec<String>,
    /// When it happened, local to the cluster: `2026-12-09 22:14:03 CET`.
    pub at: String,
    /// The same instant in UTC, RFC 3339.
    pub at_utc: String,
    /// The cluster's zone.
    pub time_zone: String,
    /// The explaining window for a planned failover.
    pub window: Option<WindowContext>,
    /// The cluster is flapping.
    pub flapping: bool,
    /// Flapping threshold count, for the message.
    pub flapping_count: u32,
    /// Flapping threshold time, for the message (`30m`).
    pub flapping_within: String,
    /// This event undoes an earlier failover.
    pub failback: bool,
    /// Local time of the failover it undoes, or empty.
    pub failback_of: String,
    /// The id of the event it undoes, or empty (a paging channel resolves that alert).
    pub failback_of_event: String,
    /// The node the cluster is expected back on after a planned failover (its `preferred`
    /// node, else the one active before), or empty.
    pub usual: String,
    /// Local time by which it is expected back there (its window's end plus after-grace),
    /// or empty. For a `back` failback: when the failover it undoes was due back.
    pub back_by: String,
    /// The reporting node itself cannot serve (a `lost` report naming no other node:
    /// keepalived's `FAULT`): `host` is that node, and no node became active.
    pub fault: bool,
    /// The cluster fenced `previous` (powered it off or rebooted it), as `host` saw.
    pub fenced: bool,
    /// The shape's version ([`MessageContext::VERSION`]); 0 for a context stored before
    /// it was written.
    pub version: u32,
}

impl MessageContext {
    /// The version of this shape, written with every context.
    pub const VERSION: u32 = 1;

    /// A context as stored: a JSON object, members missing from it (written by an older
    /// release) at their defaults, members this release does not know ignored; `null` (what
    /// an early release wrote when it could not serialise one) is the default context.
    ///
    /// # Errors
    /// Not JSON, or a member of the wrong type.
    pub fn from_json(json: &str) -> Result<MessageContext, serde_json::Error> {
        serde_json::from_str::<Option<MessageContext>>(json).map(Option::unwrap_or_default)
    }

    /// The context as stored: a JSON object.
    pub fn to_json(&self) -> String {
        // Strings, numbers, booleans and lists of them: serialising cannot fail, and `{}`
        // would read back as the default context.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

impl Default for MessageContext {
    fn default() -> Self {
        MessageContext {
            verdict: MessageKind::Unplanned,
            host: String::new(),
            previous: String::new(),
            cluster: String::new(),
            customer: String::new(),
            nodes: Vec::new(),
            at: String::new(),
            at_utc: String::new(),
            time_zone: String::new(),
            window: None,
            flapping: false,
            flapping_count: 0,
            flapping_within: String::new(),
            failback: false,
            failback_of: String::new(),
            failback_of_event: String::new(),
            usual: String::new(),
            back_by: String::new(),
            fault: false,
            fenced: false,
            version: 0,
        }
    }
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// Subject line.
    pub subject: String,
    /// Body text.
    pub body: String,
    /// One SMS segment: one line, at most [`SMS_MAX`] bytes.
    pub sms: String,
}

/// A template failed to compile or render.
#[derive(Debug, thiserror::Error)]
#[error("template `{name}` does not render")]
pub struct TemplateError {
    /// Which template: `unplanned.subject` and its scope.
    pub name: String,
    /// minijinja's explanation, with the line inside the template.
    #[source]
    pub source: minijinja::Error,
}

/// All templates of an inventory, compiled.
#[derive(Debug, Clone)]
pub struct Templates {
    env: Environment<'static>,
    present: HashMap<(Scope, MessageKind, Part), String>,
}

/// Subject, body or SMS text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// The subject line.
    Subject,
    /// The body.
    Body,
    /// The short text for SMS subscribers of an SNS topic.
    Sms,
}

impl Part {
    fn as_str(self) -> &'static str {
        match self {
            Part::Subject => "subject",
            Part::Body => "body",
            Part::Sms => "sms",
        }
    }
}

impl Default for Templates {
    fn default() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        let mut t = Templates {
            env,
            present: HashMap::new(),
        };
        for (verdict, subject) in DEFAULT_SUBJECTS {
            // The built-in templates are constants covered by tests; they always compile.
            let _ = t.add(Scope::Global, verdict, Part::Subject, subject.to_owned());
            let _ = t.add(Scope::Global, verdict, Part::Body, default_body(verdict));
            let _ = t.add(
                Scope::Global,
                verdict,
                Part::Sms,
                default_sms(verdict).to_owned(),
            );
        }
        t
    }
}

impl Templates {
    /// Adds (or replaces) one template and checks that it renders for `verdict` against a
    /// sample context.
    ///
    /// # Errors
    /// [`TemplateError`] when it does not compile or uses something the context lacks.
    pub fn add(
        &mut self,
        scope: Scope,
        verdict: MessageKind,
        part: Part,
        source: String,
    ) -> Result<(), TemplateError> {
        let name = match scope {
            Scope::Global => format!("{}.{}", verdict.as_str(), part.as_str()),
            Scope::Customer(c) => format!("customer{}.{}.{}", c.0, verdict.as_str(), part.as_str()),
            Scope::Cluster(c) => format!("cluster{}.{}.{}", c.0, verdict.as_str(), part.as_str()),
        };
        let err = |source| TemplateError {
            name: format!("{}.{}", verdict.as_str(), part.as_str()),
            source,
        };
        self.env
            .add_template_owned(name.clone(), source)
            .map_err(err)?;
        self.env
            .get_template(&name)
            .and_then(|t| t.render(sample_context(verdict)))
            .map_err(err)?;
        self.present.insert((scope, verdict, part), name);
        Ok(())
    }

    fn name_for(
        &self,
        verdict: MessageKind,
        part: Part,
        cluster: Option<ClusterId>,
        customer: Option<CustomerId>,
    ) -> &str {
        let scopes = [
            cluster.map(Scope::Cluster),
            customer.map(Scope::Customer),
            Some(Scope::Global),
        ];
        scopes
            .into_iter()
            .flatten()
            .find_map(|s| self.present.get(&(s, verdict, part)))
            .map_or("", String::as_str)
    }

    /// Renders the subject and body for an event.
    ///
    /// # Errors
    /// [`TemplateError`] when rendering fails (validation renders every template first, so
    /// this happens only for values validation could not foresee).
    pub fn render<C: Serialize>(
        &self,
        ctx: &C,
        verdict: MessageKind,
        cluster: Option<ClusterId>,
        customer: Option<CustomerId>,
    ) -> Result<Message, TemplateError> {
        let render = |part: Part| {
            let name = self.name_for(verdict, part, cluster, customer);
            self.env
                .get_template(name)
                .and_then(|t| t.render(ctx))
                .map_err(|source| TemplateError {
                    name: name.to_owned(),
                    source,
                })
        };
        Ok(Message {
            subject: render(Part::Subject)?.trim().to_owned(),
            body: render(Part::Body)?,
            sms: fit_sms(&render(Part::Sms)?),
        })
    }
}

/// A context with every field set, used to check templates when they are loaded.
pub fn sample_context(verdict: MessageKind) -> MessageContext {
    MessageContext {
        verdict,
        host: "cluster01-b".into(),
        previous: "cluster01-a".into(),
        cluster: "cluster01".into(),
        customer: "acme".into(),
        nodes: vec!["cluster01-a".into(), "cluster01-b".into()],
        at: "2026-12-09 22:14:03 CET".into(),
        at_utc: "2026-12-09T21:14:03Z".into(),
        time_zone: "Europe/Berlin".into(),
        window: matches!(verdict, MessageKind::Planned | MessageKind::NotBack).then(|| {
            WindowContext {
                name: "patch-b".into(),
                owner: "cluster01-b".into(),
                start: "2026-12-09 22:00".into(),
                end: "2026-12-10 02:00".into(),
                time_zone: "Europe/Berlin".into(),
            }
        }),
        flapping: true,
        flapping_count: 3,
        flapping_within: "30m".into(),
        failback: true,
        failback_of: "2026-12-09 21:50:00 CET".into(),
        failback_of_event: "41".into(),
        usual: "cluster01-a".into(),
        back_by: "2026-12-10 02:30:00 CET".into(),
        fault: false,
        fenced: false,
        version: MessageContext::VERSION,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A planned failover's context exactly as the release before typed contexts stored it
    /// (no `version`), and the shapes an older or a newer row may take.
    #[test]
    fn stored_contexts_of_earlier_releases_read() {
        let stored = r#"{"verdict":"planned","host":"db2","previous":"db1","cluster":"db","customer":"acme","nodes":["db1","db2"],"at":"2026-12-09 22:14:03 CET","at_utc":"2026-12-09T21:14:03Z","time_zone":"Europe/Berlin","window":{"name":"patch","owner":"ops","start":"22:00","end":"23:00","time_zone":"Europe/Berlin"},"flapping":false,"flapping_count":3,"flapping_within":"30m","failback":false,"failback_of":"","failback_of_event":"","usual":"db1","back_by":"2026-12-09 23:30:00 CET","fault":false,"fenced":false}"#;
        let c = MessageContext::from_json(stored).expect("reads");
        assert_eq!(
            (c.verdict, c.host.as_str(), c.usual.as_str(), c.version),
            (MessageKind::Planned, "db2", "db1", 0)
        );
        assert_eq!(c.window.as_ref().map(|w| w.name.as_str()), Some("patch"));
        // Written again, it reads back the same, now with its version.
        let again = MessageContext {
            version: MessageContext::VERSION,
            ..c.clone()
        };
        assert_eq!(
            MessageContext::from_json(&again.to_json()).ok(),
            Some(again)
        );
        // A member missing (an older row) is its default; one unknown (a newer row) ignored.
        let c = MessageContext::from_json(r#"{"verdict":"unplanned","host":"a","added_later":1}"#)
            .expect("reads");
        assert_eq!((c.host.as_str(), c.fenced, c.window), ("a", false, None));
        assert_eq!(
            MessageContext::from_json("null").ok(),
            Some(MessageContext::default())
        );
        assert!(
            MessageContext::from_json(r#"{"host": 7}"#).is_err(),
            "a wrong type"
        );
        assert!(MessageContext::from_json("").is_err(), "not JSON");
    }

    #[test]
    fn an_sms_is_one_line_of_at_most_one_segment() {
        assert_eq!(fit_sms(""), "");
        assert_eq!(fit_sms("  a\n\n b\tc "), "a b c");
        let exact = "x".repeat(SMS_MAX);
        assert_eq!(fit_sms(&exact), exact);
        let cut = fit_sms(&"x".repeat(SMS_MAX + 1));
        assert_eq!((cut.len(), cut.ends_with("...")), (SMS_MAX, true));
        // Two-byte characters: cut on a boundary, never above the limit.
        let cut = fit_sms(&format!("x{}", "é".repeat(200)));
        assert!(cut.len() <= SMS_MAX && cut.ends_with("..."), "{cut}");
        // The defaults fit with room to spare for long names.
        let t = Templates::default();
        for (verdict, _) in DEFAULT_SUBJECTS {
            let m = t
                .render(&sample_context(verdict), verdict, None, None)
                .expect("renders");
            assert!(m.sms.len() <= SMS_MAX - 20, "{verdict:?}: {}", m.sms);
            assert!(m.sms.contains("cluster01-b"), "{}", m.sms);
        }
    }
}
