//! The owners' dashboard in a real browser: the real bot (polling, so it also proves a polling
//! bot serves the dashboard), the fake Telegram and LLM, a ledger filled by real calls, and
//! Debian's headless Chromium opening the page as Telegram would, with launch data signed by
//! hand with the bot's token as Telegram's documentation describes it.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use botfleet_bot::dashboard::auth::hmac_sha256;
use support::fake_telegram::{TOKEN, owner_update, text_update};
use support::{BotConfigOptions, BotProcess, Harness, TestDb, eventually};

const WAIT: Duration = Duration::from_secs(20);
const OWNER: i64 = 7001;
const LEAD: i64 = 42;

fn options() -> BotConfigOptions {
    BotConfigOptions {
        mode: "polling",
        extra_yaml: format!(
            "owners: [{OWNER}]\nbudget:\n  daily: \"5.00\"\n  monthly: \"100.00\"\n\
             dashboard:\n  enabled: true\n  domain: dash.example.com\n  maxAge: 1h\n"
        ),
        ..BotConfigOptions::default()
    }
}

/// Launch data as Telegram signs it: the fields but `hash` sorted by key as `key=value` lines,
/// HMAC-SHA256 keyed with HMAC-SHA256("WebAppData", token), in hex.
fn init_data(user_id: i64, auth_date: i64) -> String {
    let user = format!(r#"{{"id":{user_id},"first_name":"Owner","username":"owner"}}"#);
    let mut fields = [
        ("user", user),
        ("query_id", "AAHdF6IQAAAAAN0XohDhrOrc".to_owned()),
        ("auth_date", auth_date.to_string()),
    ];
    fields.sort();
    let check = fields
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n");
    let secret = hmac_sha256(b"WebAppData", TOKEN.as_bytes());
    let hash = hex::encode(hmac_sha256(&secret, check.as_bytes()));
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter().map(|(k, v)| (*k, v.as_str())))
        .append_pair("hash", &hash)
        .finish()
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

fn app_url(bot: &BotProcess) -> String {
    format!("{}/app", bot.webhook_url())
}

/// The launch URL: the page with `tgWebAppData` and the theme in the fragment.
fn launch_url(bot: &BotProcess, init: &str, theme: &str) -> String {
    let fragment = form_urlencoded::Serializer::new(String::new())
        .append_pair("tgWebAppData", init)
        .append_pair("tgWebAppVersion", "8.0")
        .append_pair("tgWebAppPlatform", "android")
        .append_pair("tgWebAppThemeParams", theme)
        .finish();
    format!("{}#{fragment}", app_url(bot))
}

const LIGHT: &str = r##"{"bg_color":"#ffffff","text_color":"#000000","hint_color":"#707579","link_color":"#3390ec","button_color":"#3390ec","button_text_color":"#ffffff","secondary_bg_color":"#f4f4f5"}"##;
const DARK: &str = r##"{"bg_color":"#212121","text_color":"#ffffff","hint_color":"#aaaaaa","link_color":"#8774e1","button_color":"#8774e1","button_text_color":"#ffffff","secondary_bg_color":"#181818"}"##;

/// Text as a reader sees it: tags dropped, entities decoded, lines trimmed.
fn visible_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push('\n');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

fn chromium() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|p| p.is_file())
    })
}

/// Runs headless Chromium on `url` with `extra` arguments; returns stdout. Fails after 90 s.
fn run_chromium(chromium: &Path, profile: &Path, url: &str, extra: &[String]) -> String {
    let mut child = Command::new(chromium)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=10000",
            // Only loopback resolves: whatever asks for another host fails on this machine.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// One request in a NetLog (`URL_REQUEST_START_JOB`): its URL, who initiated it and the
/// network isolation key (the top-level site it was made for).
struct LoggedRequest {
    url: String,
    initiator: String,
    isolation_key: String,
}

fn net_log_requests(path: &Path) -> Vec<LoggedRequest> {
    let text = std::fs::read_to_string(path).expect("chromium wrote its net log");
    let log: serde_json::Value = serde_json::from_str(&text).expect("the net log is JSON");
    let start_job = &log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"];
    log["events"]
        .as_array()
        .unwrap()
        .iter()
        // The begin event carries the parameters; the end event has none.
        .filter(|e| &e["type"] == start_job && e["params"]["url"].is_string())
        .map(|e| {
            let field = |name: &str| e["params"][name].as_str().unwrap_or_default().to_owned();
            LoggedRequest {
                url: field("url"),
                initiator: field("initiator"),
                isolation_key: field("network_isolation_key"),
            }
        })
        .collect()
}

fn is_loopback(url: &str) -> bool {
    ["http://127.0.0.1:", "http://localhost:", "data:", "about:"]
        .iter()
        .any(|prefix| url.starts_with(prefix))
}

/// The reply the owner got to `command`, sent through the fake Telegram.
async fn ask(h: &Harness, update_id: i64, command: &str, starts_with: &str) -> String {
    h.telegram
        .push_update(owner_update(update_id, OWNER, OWNER, command));
    eventually(WAIT, command, || {
        h.telegram
            .sent_texts(OWNER)
            .iter()
            .any(|t| t.starts_with(starts_with))
    })
    .await;
    h.telegram
        .sent_texts(OWNER)
        .into_iter()
        .rfind(|t| t.starts_with(starts_with))
        .unwrap()
}

async fn an_owner_sees_the_numbers_of_llm_stats_in_the_browser(db: TestDb) {
    let Some(chromium) = chromium() else {
        support::skip_outside_ci(
            "no chromium on PATH (.ci/install-tools.sh installs it)",
            "the dashboard's browser test",
        );
        return;
    };
    let h = Harness::new(db, options()).await;
    let bot = h.start().await;

    // A ledger from real calls: three leads' questions answered by the (fake) LLM.
    for (i, text) in ["What do you sell?", "How much is it?", "Do you ship?"]
        .iter()
        .enumerate()
    {
        h.telegram
            .push_update(text_update(9001 + i as i64, LEAD + i as i64, text));
    }
    eventually(WAIT, "three replies", || {
        (0..3).all(|i| !h.telegram.sent_texts(LEAD + i).is_empty())
    })
    .await;
    let llm_stats = ask(&h, 9101, "/llm_stats", "<b>LLM usage</b>").await;
    let budget = ask(&h, 9102, "/budget", "<b>LLM budget</b>").await;
    let stats = ask(&h, 9103, "/stats", "<b>Leads</b>").await;
    let llm_stats = visible_text(&llm_stats);
    let week: Vec<&str> = llm_stats
        .split("Last 7 days")
        .nth(1)
        .expect("/llm_stats has a 7-day window")
        .lines()
        .skip(1)
        .collect();
    assert!(
        week.iter().any(|l| l.starts_with("Requests: 3 ")),
        "{llm_stats}"
    );

    // The menu button of the owner's chat opens the dashboard.
    let buttons = h.telegram.calls("setChatMenuButton");
    assert_eq!(buttons.len(), 1, "one owner, one menu button");
    assert_eq!(buttons[0].body["chat_id"], OWNER);
    assert_eq!(
        buttons[0].body["menu_button"],
        serde_json::json!({"type": "web_app", "text": "Dashboard",
            "web_app": {"url": "https://dash.example.com/telegram/e2e-bot/app"}})
    );

    let profile = tempfile::tempdir().unwrap();
    let net_log = profile.path().join("net-log.json");
    let init = init_data(OWNER, now_secs());
    let dom = run_chromium(
        &chromium,
        &profile.path().join("profile"),
        &launch_url(&bot, &init, LIGHT),
        &[
            "--dump-dom".to_owned(),
            format!("--log-net-log={}", net_log.display()),
        ],
    );
    assert!(
        dom.contains(r#"data-loaded="week""#),
        "the view did not load: {dom}"
    );
    let seen = visible_text(&dom);
    for line in &week {
        assert!(
            seen.contains(line),
            "the dashboard lacks /llm_stats' line {line:?}:\n{seen}"
        );
    }
    for (command, reply) in [("/budget", &budget), ("/stats", &stats)] {
        for line in visible_text(reply).lines() {
            assert!(
                seen.contains(line),
                "the dashboard lacks {command}'s line {line:?}:\n{seen}"
            );
        }
    }
    assert!(dom.contains(r#"<svg class="chart""#), "{dom}");
    assert!(seen.contains("daily limit $5.00"), "{seen}");
    assert!(seen.contains("Leads per day"), "{seen}");

    // Nothing the page asked for left loopback: every request made for the page's site, or
    // by any document, went to 127.0.0.1. (Chromium's own background services, made by the
    // browser process for no page, are kept off the network by the resolver rule.)
    let requests = net_log_requests(&net_log);
    assert!(
        requests
            .iter()
            .any(|r| r.url.contains("/telegram/e2e-bot/app/api/view")),
        "the net log shows the data request"
    );
    let for_the_page: Vec<_> = requests
        .iter()
        .filter(|r| r.isolation_key.contains("127.0.0.1") || r.initiator != "not an origin")
        .collect();
    assert!(for_the_page.len() >= 2, "the page and its data request");
    let foreign: Vec<_> = for_the_page
        .iter()
        .filter(|r| !is_loopback(&r.url))
        .map(|r| &r.url)
        .collect();
    assert!(
        foreign.is_empty(),
        "the page's requests left loopback: {foreign:?}"
    );

    // Screenshots at a phone's size, light and dark, for a person to look at.
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    for (name, theme) in [("dashboard.png", LIGHT), ("dashboard-dark.png", DARK)] {
        let shot = artifacts.join(name);
        let _ = std::fs::remove_file(&shot);
        run_chromium(
            &chromium,
            &profile.path().join(format!("profile-{name}")),
            &launch_url(&bot, &init, theme),
            &[
                format!("--screenshot={}", shot.display()),
                "--window-size=390,844".to_owned(),
                "--hide-scrollbars".to_owned(),
            ],
        );
        assert!(
            std::fs::metadata(&shot)
                .map(|m| m.len() > 0)
                .unwrap_or(false),
            "no screenshot at {}",
            shot.display()
        );
    }
    // The day view (the page's "Day" tab asks for the same) shows /llm_stats' "Today".
    let today: Vec<&str> = llm_stats
        .split("Last 7 days")
        .next()
        .unwrap()
        .lines()
        .skip_while(|l| !l.starts_with("Today"))
        .skip(1)
        .collect();
    assert!(today.iter().any(|l| l.starts_with("Cost: ")), "{llm_stats}");
    let day_view = reqwest::Client::new()
        .get(format!("{}/api/view?period=day", app_url(&bot)))
        .header("Authorization", format!("tma {init}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let day_view = visible_text(&day_view);
    for line in &today {
        assert!(
            day_view.contains(line),
            "the day view lacks {line:?}:\n{day_view}"
        );
    }

    let metrics = bot
        .metrics_with(&[r#"botfleet_dashboard_requests_total{outcome="ok"} 4"#])
        .await;
    assert!(
        metrics.contains(r#"botfleet_dashboard_requests_total{outcome="ok"} 4"#),
        "{metrics}"
    );
    assert!(!bot.log().contains(&init), "launch data in the log");
}
for_each_db!(an_owner_sees_the_numbers_of_llm_stats_in_the_browser);

async fn strangers_tampered_and_stale_launch_data_are_refused(db: TestDb) {
    let h = Harness::new(db, options()).await;
    let bot = h.start().await;
    let client = reqwest::Client::new();
    let api = format!("{}/api/view?period=day", app_url(&bot));
    let status = |init: Option<String>| {
        let mut request = client.get(&api);
        if let Some(init) = init {
            request = request.header("Authorization", format!("tma {init}"));
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };

    // The page itself carries no data and needs no credential; no CORS header opens it up.
    let page = client.get(app_url(&bot)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers().get("access-control-allow-origin").is_none());
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("connect-src 'self'")
    );

    assert_eq!(status(Some(init_data(OWNER, now_secs()))).await, 200);
    assert_eq!(status(Some(init_data(LEAD, now_secs()))).await, 403);
    let tampered = init_data(OWNER, now_secs()).replace(
        &format!("%22id%22%3A{OWNER}"),
        &format!("%22id%22%3A{LEAD}"),
    );
    assert_eq!(status(Some(tampered)).await, 401);
    assert_eq!(status(Some(init_data(OWNER, now_secs() - 3700))).await, 401);
    let unsigned = init_data(OWNER, now_secs())
        .split("&hash=")
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(status(Some(unsigned)).await, 401);
    assert_eq!(status(None).await, 401);
    let ok = client
        .get(&api)
        .header(
            "Authorization",
            format!("tma {}", init_data(OWNER, now_secs())),
        )
        .send()
        .await
        .unwrap();
    assert!(ok.headers().get("access-control-allow-origin").is_none());

    let lines = [
        r#"botfleet_dashboard_requests_total{outcome="ok"} 2"#,
        r#"botfleet_dashboard_requests_total{outcome="forbidden"} 1"#,
        r#"botfleet_dashboard_requests_total{outcome="unauthorized"} 4"#,
    ];
    let metrics = bot.metrics_with(&lines).await;
    for line in lines {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }

    // /dashboard answers owners with a button that opens the Mini App.
    h.telegram
        .push_update(owner_update(9201, OWNER, OWNER, "/dashboard"));
    eventually(WAIT, "/dashboard's answer", || {
        h.telegram
            .sent_buttons(OWNER)
            .iter()
            .flatten()
            .any(|(label, _)| label == "Dashboard")
    })
    .await;
    let sent = h.telegram.calls("sendMessage.ok");
    let markup = &sent.last().unwrap().body["reply_markup"];
    assert_eq!(
        markup["inline_keyboard"][0][0],
        serde_json::json!({"text": "Dashboard",
            "web_app": {"url": "https://dash.example.com/telegram/e2e-bot/app"}})
    );
}
for_each_db!(strangers_tampered_and_stale_launch_data_are_refused);

async fn the_handoff_group_sees_the_inbox_only(db: TestDb) {
    const GROUP: i64 = -100_555;
    const OPERATOR: i64 = 8001;
    let mut options = options();
    options
        .extra_yaml
        .push_str(&format!("handoff:\n  notify: {{chatId: {GROUP}}}\n"));
    let h = Harness::new(db, options).await;
    h.telegram.add_member(GROUP, OPERATOR);
    let bot = h.start().await;
    // A lead asks for a person: one open handoff.
    h.telegram.push_update(text_update(9301, LEAD, "/human"));
    eventually(WAIT, "the handoff notice in the group", || {
        !h.telegram.sent_texts(GROUP).is_empty()
    })
    .await;

    let view = |user: i64| {
        let request = reqwest::Client::new()
            .get(format!("{}/api/view?period=week", app_url(&bot)))
            .header(
                "Authorization",
                format!("tma {}", init_data(user, now_secs())),
            );
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, body) = view(OPERATOR).await;
    assert_eq!(status, 200, "{body}");
    let seen = visible_text(&body);
    assert!(seen.contains("Open handoffs: 1"), "{seen}");
    assert!(seen.contains("waiting for a person"), "{seen}");
    assert!(
        !seen.contains("Spend") && !seen.contains("LLM budget") && !seen.contains("Leads"),
        "the inbox view shows nothing but the inbox: {seen}"
    );
    let (status, _) = view(LEAD).await;
    assert_eq!(status, 403, "not an owner and not in the group");
    let (status, body) = view(OWNER).await;
    assert_eq!(status, 200);
    assert!(visible_text(&body).contains("Spend per day"));
}
for_each_db!(the_handoff_group_sees_the_inbox_only);
