//! The dashboard's HTML: the page Telegram opens (no data: it reads its launch parameters
//! from the URL fragment and asks the API with them) and the view the API renders.

use std::fmt::Write;

use botfleet_api::format_usd;

use super::data::{Dashboard, LeadDay, View};
use super::svg::{self, Line, Series};
use crate::handoff::store::OpenHandoff;
use crate::money::{
    BudgetLimits, UsageTotals, render_budget, render_lead_stats, render_top_leads,
    render_window_html,
};
use crate::telegram::escape_html;

/// The page at `<webhook path>/app`. `api` is the path of the view endpoint. Everything it
/// needs is inline: no script or style from anywhere else.
pub fn shell(api: &str) -> String {
    let api = serde_json::to_string(api).unwrap_or_else(|_| "\"\"".to_owned());
    // `</` cannot occur in a JSON string written by serde_json for a path, but be sure.
    let api = api.replace("</", "<\\/");
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Dashboard</title>
<style>{STYLE}</style>
</head>
<body>
<header><h1>Dashboard</h1>
<nav aria-label="Period">{tabs}</nav></header>
<main id="main" aria-live="polite">Loading…</main>
<script>const API = {api};
{SCRIPT}</script>
</body>
</html>
"#,
        tabs = View::ALL
            .iter()
            .map(|v| format!(
                r#"<button type="button" data-period="{0}">{1}</button>"#,
                v.as_str(),
                match v {
                    View::Day => "Day",
                    View::Week => "Week",
                    View::Month => "Month",
                }
            ))
            .collect::<String>(),
    )
}

/// Theme: Telegram's `tgWebAppThemeParams` become `--tg-*` variables; without them the
/// browser's light or dark preference picks the defaults.
const STYLE: &str = r#"
:root { --tg-bg-color:#fff; --tg-text-color:#111; --tg-hint-color:#6b7280; --tg-link-color:#2481cc;
  --tg-button-color:#2481cc; --tg-button-text-color:#fff; --tg-secondary-bg-color:#f1f3f5;
  --tg-destructive-text-color:#d63031; color-scheme: light dark; }
@media (prefers-color-scheme: dark) { :root { --tg-bg-color:#17212b; --tg-text-color:#f5f5f5;
  --tg-hint-color:#9aa4af; --tg-link-color:#62bcf9; --tg-button-color:#5288c1;
  --tg-secondary-bg-color:#232e3c; --tg-destructive-text-color:#ec3942; } }
* { box-sizing: border-box; }
body { margin:0; padding:12px; font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
  background:var(--tg-bg-color); color:var(--tg-text-color); }
header { display:flex; flex-wrap:wrap; align-items:center; justify-content:space-between; gap:8px; }
h1 { font-size:20px; margin:0; }
h2 { font-size:16px; margin:0 0 6px; }
nav { display:flex; gap:4px; }
nav button { border:0; border-radius:8px; padding:6px 12px; font:inherit;
  background:var(--tg-secondary-bg-color); color:var(--tg-text-color); }
nav button[aria-pressed="true"] { background:var(--tg-button-color); color:var(--tg-button-text-color); }
section { background:var(--tg-secondary-bg-color); border-radius:12px; padding:10px 12px; margin:12px 0; }
.text { white-space:pre-line; }
.text b:first-child { font-size:16px; }
code { font-family:ui-monospace,monospace; font-size:13px; }
.hint, .axis { color:var(--tg-hint-color); fill:var(--tg-hint-color); font-size:10px; }
.chart { width:100%; height:160px; display:block; }
.progress { width:100%; height:8px; display:block; margin:2px 0 6px; }
.track { fill:var(--tg-bg-color); }
.s0 { fill:var(--tg-button-color); background:var(--tg-button-color); }
.s1 { fill:#e8a33d; background:#e8a33d; } .s2 { fill:#8e6ad8; background:#8e6ad8; }
.s3 { fill:#27a17a; background:#27a17a; } .s4 { fill:var(--tg-destructive-text-color); background:var(--tg-destructive-text-color); }
.limit { stroke:var(--tg-destructive-text-color); stroke-width:1.5; stroke-dasharray:4 3; }
.legend { margin:4px 0; font-size:12px; } .legend span { margin-right:8px; white-space:nowrap; }
.mark { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:4px; }
table { width:100%; border-collapse:collapse; font-size:13px; font-variant-numeric:tabular-nums; }
th, td { text-align:right; padding:2px 4px; } th:first-child, td:first-child { text-align:left; }
th { color:var(--tg-hint-color); font-weight:normal; }
ul { margin:0; padding-left:18px; } li { margin:4px 0; }
a { color:var(--tg-link-color); }
"#;

/// Reads the launch parameters from the fragment (never sent to any server but ours, in the
/// `Authorization` header), applies the theme, and loads the chosen period's view.
const SCRIPT: &str = r#"(function () {
  const launch = new URLSearchParams(location.hash.slice(1));
  const initData = launch.get('tgWebAppData') || '';
  let theme = {};
  try { theme = JSON.parse(launch.get('tgWebAppThemeParams') || '{}'); } catch (e) { theme = {}; }
  for (const [key, value] of Object.entries(theme)) {
    if (/^[a-z_]+$/.test(key) && /^#[0-9a-fA-F]{3,8}$/.test(String(value))) {
      document.documentElement.style.setProperty('--tg-' + key.replace(/_/g, '-'), value);
    }
  }
  const main = document.getElementById('main');
  const why = { 401: 'Your Telegram sign-in has expired or is not valid: open the dashboard from the bot again.',
    403: 'This dashboard is for the bot\'s owners only.', 429: 'Too many requests: try again in a moment.' };
  async function show(period) {
    for (const b of document.querySelectorAll('nav button')) {
      b.setAttribute('aria-pressed', String(b.dataset.period === period));
    }
    if (!initData) { main.textContent = 'Open the dashboard from the bot in Telegram.'; return; }
    main.setAttribute('aria-busy', 'true');
    try {
      const response = await fetch(API + '?period=' + period, {
        headers: { Authorization: 'tma ' + initData }, credentials: 'omit', cache: 'no-store' });
      if (response.ok) { main.innerHTML = await response.text(); }
      else { main.textContent = why[response.status] || ('The dashboard failed (' + response.status + ').'); }
    } catch (e) {
      main.textContent = 'The dashboard could not be loaded.';
    }
    main.removeAttribute('aria-busy');
    document.body.dataset.loaded = period;
  }
  document.querySelector('nav').addEventListener('click', function (event) {
    const period = event.target.dataset && event.target.dataset.period;
    if (period) { show(period); }
  });
  show('week');
})();"#;

/// The view of one period: charts with their numbers written out, and the owners' reports
/// exactly as the commands write them.
pub fn view(d: &Dashboard, limits: &BudgetLimits) -> String {
    let first = d.usage.stats.first_day;
    let last = d.usage.stats.last_day;
    let mut out = format!(
        r#"<p class="hint" id="period" data-period="{}">{}</p>"#,
        d.view.as_str(),
        escape_html(&d.view.title(first, last))
    );
    out.push_str(&spend_section(d, limits));
    section_text(&mut out, &render_budget(limits, &d.spend, d.now));
    out.push_str(&breakdown_section(
        "Spend by model",
        &d.usage.stats.by_model,
    ));
    out.push_str(&breakdown_section(
        "Spend by request type",
        &d.usage.stats.by_request_type,
    ));
    section_text(
        &mut out,
        &render_window_html(
            &format!("LLM usage: {}", d.view.title(first, last)),
            &d.usage.stats,
        ),
    );
    if !d.top_leads.is_empty() {
        section_text(&mut out, &render_top_leads(&d.top_leads));
    }
    out.push_str(&leads_section(&d.lead_days));
    section_text(&mut out, &render_lead_stats(&d.lead_stats));
    out.push_str(&handoffs_section(&d.open_handoffs, d.now));
    out.push_str(&broadcasts_section(d));
    out
}

/// Telegram HTML from a command's renderer (a subset of HTML, escaped where it must be).
fn section_text(out: &mut String, telegram_html: &str) {
    let _ = write!(
        out,
        r#"<section class="text">{}</section>"#,
        telegram_html.trim()
    );
}

fn spend_section(d: &Dashboard, limits: &BudgetLimits) -> String {
    let days: Vec<_> = day_range(d.usage.stats.first_day, d.usage.stats.last_day);
    let cost = |day: &str| d.usage.by_day.get(day).map_or(0, |t| t.cost_nanos);
    let labels: Vec<String> = days.iter().map(|day| day[5..].to_owned()).collect();
    let values: Vec<Vec<i64>> = days.iter().map(|day| vec![cost(day)]).collect();
    let line = limits.daily_nanos.map(|limit| Line {
        value: limit,
        label: format!("daily limit {}", format_usd(limit, 2)),
    });
    let series = [Series {
        name: "spend",
        class: "s0",
    }];
    let mut out = String::from(r#"<section id="spend"><h2>Spend per day</h2>"#);
    out.push_str(&svg::bars(
        "Spend per day",
        &labels,
        &series,
        &values,
        line.as_ref(),
    ));
    out.push_str("<table><tr><th>Day (UTC)</th><th>Spend</th><th>Requests</th></tr>");
    for day in &days {
        let t = d.usage.by_day.get(day).copied().unwrap_or_default();
        let _ = write!(
            out,
            "<tr><td>{day}</td><td>{}</td><td>{}</td></tr>",
            format_usd(t.cost_nanos, 4),
            crate::money::group(t.requests)
        );
    }
    out.push_str("</table></section>");
    out
}

fn breakdown_section(
    title: &str,
    rows: &std::collections::BTreeMap<String, UsageTotals>,
) -> String {
    let total: i64 = rows.values().map(|t| t.cost_nanos).sum();
    let mut out = format!("<section><h2>{}</h2>", escape_html(title));
    if rows.is_empty() {
        out.push_str(r#"<p class="hint">No LLM calls.</p>"#);
    }
    for (name, t) in rows {
        let _ = write!(
            out,
            "<div><code>{}</code>: {} · {} req</div>{}",
            escape_html(name),
            format_usd(t.cost_nanos, 4),
            crate::money::group(t.requests),
            svg::progress(t.cost_nanos, total)
        );
    }
    out.push_str("</section>");
    out
}

const LEAD_SERIES: [Series<'static>; 5] = [
    Series {
        name: "new",
        class: "s0",
    },
    Series {
        name: "active",
        class: "s1",
    },
    Series {
        name: "followed up",
        class: "s2",
    },
    Series {
        name: "handed over",
        class: "s3",
    },
    Series {
        name: "opted out",
        class: "s4",
    },
];

fn leads_section(days: &[LeadDay]) -> String {
    let row = |d: &LeadDay| {
        [
            d.counts.new,
            d.counts.active,
            d.counts.followed_up,
            d.handed_over,
            d.counts.opted_out,
        ]
    };
    let labels: Vec<String> = days
        .iter()
        .map(|d| d.day.format("%m-%d").to_string())
        .collect();
    let values: Vec<Vec<i64>> = days.iter().map(|d| row(d).to_vec()).collect();
    let mut out = String::from(r#"<section id="leads"><h2>Leads per day</h2>"#);
    out.push_str(&svg::bars(
        "Leads per day",
        &labels,
        &LEAD_SERIES,
        &values,
        None,
    ));
    out.push_str(&svg::legend(&LEAD_SERIES));
    out.push_str("<table><tr><th>Day</th>");
    for s in &LEAD_SERIES {
        let _ = write!(out, "<th>{}</th>", s.name);
    }
    out.push_str("</tr>");
    for d in days {
        let _ = write!(out, "<tr><td>{}</td>", d.day.format("%m-%d"));
        for n in row(d) {
            let _ = write!(out, "<td>{}</td>", crate::money::group(n));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table></section>");
    out
}

/// The view of a member of the handoff group who is not an owner: the open handoffs only.
pub fn inbox_view(open: &[OpenHandoff], now: chrono::DateTime<chrono::Utc>) -> String {
    let mut out = String::from(
        r#"<p class="hint" id="period" data-period="inbox">The handoff inbox (spend and leads are for the owners)</p>"#,
    );
    out.push_str(&handoffs_section(open, now));
    out
}

fn handoffs_section(open_handoffs: &[OpenHandoff], now: chrono::DateTime<chrono::Utc>) -> String {
    let now_ms = now.timestamp_millis();
    let mut out = format!(
        r#"<section id="handoffs"><h2>Open handoffs: {}</h2>"#,
        open_handoffs.len()
    );
    if open_handoffs.is_empty() {
        out.push_str(r#"<p class="hint">No lead is waiting for a person.</p>"#);
    } else {
        out.push_str("<ul>");
        for open in open_handoffs {
            let (h, lead) = (&open.handoff, &open.lead);
            let who = match (&lead.first_name, &lead.username) {
                (Some(name), Some(user)) => format!("{name} (@{user})"),
                (Some(name), None) => name.clone(),
                (None, Some(user)) => format!("@{user}"),
                (None, None) => format!("chat {}", lead.chat_id),
            };
            let state = match (&h.taken_by, &h.taken_by_name) {
                (Some(_), Some(name)) => format!("with {name}"),
                (Some(id), None) => format!("with {id}"),
                (None, _) => "waiting for a person".to_owned(),
            };
            let _ = write!(
                out,
                "<li>{} — {}, {} since it opened ({})</li>",
                escape_html(&who),
                escape_html(&state),
                crate::handoff::ago(h.opened_at, now_ms),
                escape_html(&h.reason)
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");
    out
}

fn broadcasts_section(d: &Dashboard) -> String {
    let mut out = String::from(r#"<section id="broadcasts"><h2>Broadcasts</h2>"#);
    if d.broadcasts.is_empty() {
        out.push_str(r#"<p class="hint">No broadcasts yet.</p>"#);
    }
    for (b, c) in &d.broadcasts {
        let done = c.total() - c.remaining();
        let _ = write!(
            out,
            "<div>#{} {} — {} of {} done: {} sent, {} failed, {} blocked, {} skipped</div>{}",
            b.id,
            escape_html(&b.status),
            crate::money::group(done),
            crate::money::group(c.total()),
            crate::money::group(c.sent),
            crate::money::group(c.failed),
            crate::money::group(c.blocked),
            crate::money::group(c.skipped),
            svg::progress(done, c.total())
        );
    }
    out.push_str("</section>");
    out
}

/// `YYYY-MM-DD` of each day from `first` to `last`.
fn day_range(first: chrono::NaiveDate, last: chrono::NaiveDate) -> Vec<String> {
    first
        .iter_days()
        .take_while(|d| *d <= last)
        .map(crate::money::day_key)
        .collect()
}
