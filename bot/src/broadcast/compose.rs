//! The owner's side of a broadcast: `/broadcast [30d] [at 2026-12-24 10:00]` opens a draft
//! (kept in the database, so any replica or a restarted bot has it), the owner's next message
//! becomes its content, the bot answers with a preview and the audience with Confirm / Cancel
//! buttons, and nothing is sent before Confirm. `/broadcasts` lists recent ones;
//! `/broadcast_cancel [id]` or the Cancel button stops one.

use std::time::Duration;

use botfleet_api::parse_duration;
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use teloxide::types::Message;

use super::content::{Content, send};
use super::store::{self, Broadcast, Counts};
use super::{BroadcastError, Settings};
use crate::context::Context;
use crate::telegram::{Format, Priority, escape_html};

const CONFIRM: &str = "bcast:go:";
const CANCEL: &str = "bcast:no:";
/// How many broadcasts `/broadcasts` lists.
const LISTED: i64 = 10;

/// What `/broadcast`'s arguments ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Only leads who wrote within this window.
    pub active_within: Option<Duration>,
    /// Start then, not at once.
    pub at: Option<DateTime<Utc>>,
}

/// Parses `30d`, `at 2026-12-24 10:00` (seconds optional), both, or nothing. `zone` is the
/// bot's time zone; a time in the past is refused.
pub fn parse_request(args: &str, zone: Tz, now: DateTime<Utc>) -> Result<Request, String> {
    let mut request = Request {
        active_within: None,
        at: None,
    };
    let mut words = args.split_whitespace();
    while let Some(word) = words.next() {
        if word.eq_ignore_ascii_case("at") {
            let (Some(date), Some(time)) = (words.next(), words.next()) else {
                return Err("after “at” give a date and a time: at 2026-12-24 10:00".into());
            };
            let local = NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y-%m-%d %H:%M")
                .or_else(|_| {
                    NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y-%m-%d %H:%M:%S")
                })
                .map_err(|_| format!("“{date} {time}” is not a time like 2026-12-24 10:00"))?;
            // A time skipped by a DST change is refused; a repeated one takes the earlier.
            let at = zone
                .from_local_datetime(&local)
                .earliest()
                .ok_or_else(|| format!("{date} {time} does not exist in {zone}"))?
                .with_timezone(&Utc);
            if at <= now {
                return Err(format!("{date} {time} ({zone}) has passed"));
            }
            request.at = Some(at);
        } else {
            let window = parse_duration(word).map_err(|_| {
                format!("“{word}” is neither a window like 30d nor “at 2026-12-24 10:00”")
            })?;
            if window.is_zero() {
                return Err("the window must be longer than 0".into());
            }
            request.active_within = Some(window);
        }
    }
    Ok(request)
}

/// A pressed button of a broadcast preview or progress message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Button {
    Confirm(i64),
    Cancel(i64),
}

impl Button {
    pub fn parse(data: &str) -> Option<Self> {
        if let Some(id) = data.strip_prefix(CONFIRM) {
            return id.parse().ok().map(Button::Confirm);
        }
        data.strip_prefix(CANCEL)?.parse().ok().map(Button::Cancel)
    }

    pub fn data(self) -> String {
        match self {
            Button::Confirm(id) => format!("{CONFIRM}{id}"),
            Button::Cancel(id) => format!("{CANCEL}{id}"),
        }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// "every lead who has not opted out" / "… and wrote in the last 30d".
fn audience_words(active_within_ms: Option<i64>) -> String {
    match active_within_ms {
        None => "leads who have not opted out".into(),
        Some(window) => format!(
            "leads who have not opted out and wrote in the last {}",
            human(Duration::from_millis(u64::try_from(window).unwrap_or(0)))
        ),
    }
}

fn human(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s >= 3_600 && s % 3_600 == 0 => format!("{} hours", s / 3_600),
        s if s >= 60 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

pub fn local_time(at_ms: i64, zone: Tz) -> String {
    crate::db::from_millis(at_ms)
        .with_timezone(&zone)
        .format("%Y-%m-%d %H:%M")
        .to_string()
        + &format!(" ({zone})")
}

/// `/broadcast [args]`: opens a draft and asks for the message. Returns the HTML reply.
pub async fn start(
    ctx: &Context,
    settings: &Settings,
    owner_chat_id: i64,
    args: &str,
    now: DateTime<Utc>,
) -> Result<String, BroadcastError> {
    let request = match parse_request(args, settings.time_zone, now) {
        Ok(r) => r,
        Err(why) => {
            return Ok(format!(
                "{}\n\nUse <code>/broadcast</code>, <code>/broadcast 30d</code> (only leads who wrote in the last 30 days) or <code>/broadcast at 2026-12-24 10:00</code> ({}).",
                escape_html(&why),
                escape_html(settings.time_zone.name())
            ));
        }
    };
    let window = request.active_within.map(ms);
    let at = request.at.map(|t| t.timestamp_millis());
    let id =
        store::create_draft(&ctx.db, owner_chat_id, window, at, now.timestamp_millis()).await?;
    let when = match at {
        Some(at) => format!(
            ", starting {}",
            escape_html(&local_time(at, settings.time_zone))
        ),
        None => String::new(),
    };
    Ok(format!(
        "📣 <b>Broadcast #{id}</b> to {}{when}.\n\nSend me the message now: text (your formatting is kept), or a photo or a document with a caption. Link buttons go on the last lines, one per line: <code>[Label](https://example.com)</code>.\n\nYou'll see a preview before anything is sent. /broadcast_cancel drops it.",
        audience_words(window)
    ))
}

/// The owner's draft that waits for this message, if any.
pub async fn draft_for(
    ctx: &Context,
    owner_chat_id: i64,
    update_id: i64,
) -> Result<Option<Broadcast>, BroadcastError> {
    Ok(store::draft_awaiting(&ctx.db, owner_chat_id, update_id).await?)
}

/// The owner's message for `draft`: stored, then shown as leads will see it, with the audience
/// and Confirm / Cancel. An unusable message gets the reason and the draft keeps waiting.
pub async fn content_received(
    ctx: &Context,
    settings: &Settings,
    draft: &Broadcast,
    update_id: i64,
    message: &Message,
) -> Result<(), BroadcastError> {
    let owner = draft.owner_chat_id;
    let content = match Content::from_message(message, settings.opt_out_chars()) {
        Ok(content) => content,
        Err(why) => {
            let text = format!(
                "I can't broadcast that: {}. Send the message again, or /broadcast_cancel.",
                escape_html(&why.to_string())
            );
            ctx.delivery
                .send(owner, &text, Format::Html, Priority::Interactive)
                .await?;
            return Ok(());
        }
    };
    store::set_content(&ctx.db, draft.id, &content, update_id).await?;
    let now = chrono::Utc::now().timestamp_millis();
    let since = draft.active_within_ms.map(|w| now - w);
    let audience = store::audience(&ctx.db, owner, since).await?;
    send(
        &ctx.delivery,
        owner,
        &content,
        settings.opt_out_line.as_deref(),
        Priority::Interactive,
    )
    .await?;
    let when = match draft.scheduled_at {
        Some(at) => format!(
            "It starts {}.",
            escape_html(&local_time(at, settings.time_zone))
        ),
        None => "It starts as soon as you confirm.".into(),
    };
    let text = format!(
        "☝️ That is <b>broadcast #{}</b>, exactly as leads will get it. It goes to <b>{audience}</b> {} (counted again when it starts). {when}\n\nSend it?",
        draft.id,
        audience_words(draft.active_within_ms),
    );
    let buttons = [
        ("✅ Confirm".to_owned(), Button::Confirm(draft.id).data()),
        ("Cancel".to_owned(), Button::Cancel(draft.id).data()),
    ];
    ctx.delivery
        .send_with_buttons(owner, &text, Format::Html, Priority::Interactive, &buttons)
        .await?;
    Ok(())
}

/// Confirm or Cancel pressed: the reply to the owner (HTML).
pub async fn button(
    ctx: &Context,
    settings: &Settings,
    pressed: Button,
    now: DateTime<Utc>,
) -> Result<String, BroadcastError> {
    let now_ms = now.timestamp_millis();
    match pressed {
        Button::Confirm(id) => {
            if !store::confirm(&ctx.db, id, now_ms).await? {
                let state = store::status(&ctx.db, id).await?.unwrap_or_default();
                return Ok(format!(
                    "Broadcast #{id} is {}: nothing to confirm.",
                    state_words(&state)
                ));
            }
            let scheduled = store::load(&ctx.db, id).await?.and_then(|b| b.scheduled_at);
            tracing::info!(broadcast = id, "broadcast confirmed");
            Ok(match scheduled {
                Some(at) => format!(
                    "✅ Broadcast #{id} is scheduled for {}. /broadcasts shows it; /broadcast_cancel {id} drops it.",
                    escape_html(&local_time(at, settings.time_zone))
                ),
                None => format!(
                    "✅ Broadcast #{id} confirmed: it starts within seconds, and its progress shows here."
                ),
            })
        }
        Button::Cancel(id) => cancel(ctx, id, now).await,
    }
}

/// `/broadcast_cancel [id]`: the given broadcast, else the owner's latest open one.
pub async fn cancel_command(
    ctx: &Context,
    owner_chat_id: i64,
    args: &str,
    now: DateTime<Utc>,
) -> Result<String, BroadcastError> {
    let id = match args.trim() {
        "" => latest_open(ctx, owner_chat_id).await?,
        arg => match arg.trim_start_matches('#').parse::<i64>() {
            Ok(id) => Some(id),
            Err(_) => {
                return Ok(
                    "Use <code>/broadcast_cancel 12</code> with the broadcast's number (see /broadcasts)."
                        .into(),
                );
            }
        },
    };
    match id {
        Some(id) => cancel(ctx, id, now).await,
        None => Ok("No broadcast is open.".into()),
    }
}

async fn latest_open(ctx: &Context, owner_chat_id: i64) -> Result<Option<i64>, BroadcastError> {
    use crate::db::SqlContext;
    Ok(sqlx::query_scalar(
        "SELECT id FROM broadcasts
         WHERE (owner_chat_id = $1 AND status IN ('composing', 'previewed'))
            OR status IN ('queued', 'running')
         ORDER BY id DESC LIMIT 1",
    )
    .bind(owner_chat_id)
    .fetch_optional(&ctx.db.pool)
    .await
    .ctx("looking for an open broadcast")?)
}

async fn cancel(ctx: &Context, id: i64, now: DateTime<Utc>) -> Result<String, BroadcastError> {
    match store::cancel(&ctx.db, id, now.timestamp_millis()).await? {
        Some(before) if before == "running" => {
            tracing::info!(broadcast = id, "running broadcast cancelled");
            Ok(format!(
                "🛑 Broadcast #{id} is cancelled: no more messages go out (its progress message shows the final count)."
            ))
        }
        Some(_) => {
            tracing::info!(broadcast = id, "broadcast cancelled before it started");
            Ok(format!("Broadcast #{id} is cancelled; nothing was sent."))
        }
        None => {
            let state = store::status(&ctx.db, id).await?;
            Ok(match state {
                Some(state) => format!(
                    "Broadcast #{id} is {}: nothing to cancel.",
                    state_words(&state)
                ),
                None => format!("There is no broadcast #{id}."),
            })
        }
    }
}

fn state_words(state: &str) -> &'static str {
    match state {
        "composing" => "waiting for its message",
        "previewed" => "waiting for Confirm",
        "queued" => "scheduled",
        "running" => "sending",
        "done" => "finished",
        "cancelled" => "cancelled",
        _ => "unknown",
    }
}

/// `/broadcasts`: the recent confirmed broadcasts with their counts (HTML).
pub async fn list(ctx: &Context, settings: &Settings) -> Result<String, BroadcastError> {
    let recent = store::recent(&ctx.db, LISTED).await?;
    if recent.is_empty() {
        return Ok("No broadcasts yet. Start one with /broadcast.".into());
    }
    let mut out = String::from("📣 <b>Recent broadcasts</b>\n");
    for (b, counts) in recent {
        out.push('\n');
        out.push_str(&summary_line(&b, &counts, settings.time_zone));
    }
    Ok(out)
}

fn summary_line(b: &Broadcast, c: &Counts, zone: Tz) -> String {
    let when = b.started_at.or(b.scheduled_at).unwrap_or(b.created_at);
    let counts = if c.total() > 0 {
        format!(
            " — sent {}, failed {}, blocked {}, remaining {}",
            c.sent,
            c.failed,
            c.blocked,
            c.remaining()
        )
    } else {
        String::new()
    };
    format!(
        "#{} {} {}{counts}",
        b.id,
        state_words(&b.status),
        escape_html(&local_time(when, zone)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-12-06T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn arguments_are_a_window_and_a_time_in_the_bots_zone() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(
            parse_request("", berlin, now()),
            Ok(Request {
                active_within: None,
                at: None
            })
        );
        let r = parse_request("30d at 2026-12-24 10:00", berlin, now()).unwrap();
        assert_eq!(r.active_within, Some(Duration::from_secs(30 * 86_400)));
        // 10:00 in Berlin in winter is 09:00 UTC.
        assert_eq!(r.at, Some("2026-12-24T09:00:00Z".parse().unwrap()));
        let r = parse_request("at 2026-12-06 12:00:30", Tz::UTC, now()).unwrap();
        assert_eq!(r.at, Some("2026-12-06T12:00:30Z".parse().unwrap()));
        assert!(parse_request("at 2026-12-06 11:59", Tz::UTC, now()).is_err());
        assert!(parse_request("at tomorrow", Tz::UTC, now()).is_err());
        assert!(parse_request("soon", Tz::UTC, now()).is_err());
        // 02:30 does not exist in Berlin on the morning clocks go forward.
        assert!(parse_request("at 2027-03-28 02:30", berlin, now()).is_err());
    }

    #[test]
    fn buttons_carry_the_broadcast() {
        for b in [Button::Confirm(12), Button::Cancel(7)] {
            assert_eq!(Button::parse(&b.data()), Some(b));
        }
        assert_eq!(Button::parse("suggest:1"), None);
        assert_eq!(Button::parse("bcast:go:x"), None);
    }
}
